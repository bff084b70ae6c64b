// Web chat client: posts answers, polls the outbox for replies. No framework, works on old phones.
(function () {
  "use strict";
  var main = document.querySelector("main.chat");
  if (!main) return;
  var token = main.getAttribute("data-token");
  var log = main.querySelector(".log");
  var buttonsBox = main.querySelector(".buttons");
  var form = main.querySelector(".compose");
  var input = form.querySelector("textarea");
  var lastId = 0;
  var polling = false;
  var shown = {};  // client ids of our own messages already on screen

  function newId() {
    var a = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function bubble(text, who, dir) {
    var li = document.createElement("li");
    li.className = "msg " + who;
    li.setAttribute("dir", dir || "auto");
    li.textContent = text;
    log.appendChild(li);
    li.scrollIntoView({ block: "end" });
    return li;
  }

  function showButtons(message) {
    buttonsBox.innerHTML = "";
    buttonsBox.setAttribute("dir", message.dir || "auto");
    (message.buttons || []).forEach(function (b, i) {
      var btn = document.createElement("button");
      btn.type = "button";
      btn.textContent = b.label;
      btn.addEventListener("click", function () {
        if (message.multiple) {
          input.value = (input.value ? input.value + " " : "") + (i + 1);
          input.focus();
        } else {
          send(b.label, b.payload);
        }
      });
      buttonsBox.appendChild(btn);
    });
  }

  function render(messages) {
    messages.forEach(function (m) {
      if (m.id <= lastId) return;
      lastId = m.id;
      if (m.who === "me") {
        // Our own earlier messages (after a reload); those sent from this page are already shown.
        if (!shown[m.client_id] && m.text) bubble(m.text, "me");
        return;
      }
      var text = m.text;
      if (m.numbered && m.numbered.length && !(m.buttons && m.buttons.length)) {
        text += "\n" + m.numbered.map(function (n, i) { return (i + 1) + ". " + n; }).join("\n");
      }
      if (text) bubble(text, "bot", m.dir);
      if (m.kind === "question" || m.kind === "reprompt" || (m.buttons && m.buttons.length)) {
        showButtons(m);
      } else if (m.kind === "thanks" || m.kind === "opt_out") {
        buttonsBox.innerHTML = "";
      }
      if (m.text && m.lang) {
        // The page follows the language of what the person reads; cleared messages say nothing.
        document.documentElement.setAttribute("dir", m.dir || "ltr");
        document.documentElement.setAttribute("lang", m.lang);
      }
    });
  }

  function poll() {
    if (polling) return;
    polling = true;
    fetch("/chat/" + token + "/messages?after=" + lastId, { headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : { messages: [] }; })
      .then(function (data) { render(data.messages || []); })
      .catch(function () {})
      .then(function () { polling = false; });
  }

  function send(text, payload) {
    var body = { id: newId(), text: text || "" };
    if (payload) body.payload = payload;
    shown[body.id] = true;
    bubble(text, "me");
    buttonsBox.innerHTML = "";
    var attempt = function (n) {
      return fetch("/chat/" + token + "/messages", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body)
      }).then(function (r) {
        if (r.status >= 500 && n < 3) return new Promise(function (ok) { setTimeout(ok, 1000 * n); }).then(function () { return attempt(n + 1); });
        return r;
      });
    };
    // The same client id on a retry: the server keeps the answer once.
    attempt(1).then(function () { setTimeout(poll, 150); setTimeout(poll, 600); }).catch(function () {});
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    send(text, null);
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit")); }
  });

  poll();
  setInterval(poll, 2000);
})();
