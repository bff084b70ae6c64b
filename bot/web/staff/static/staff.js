// The staff web app's small behaviours; every page works without them, they only add:
// - [data-poll]: fetch the JSON at that URL every few seconds; put each value into the element
//   inside with data-field="<key>" (and data-bar="<key>" on a <progress>).
// - [data-count-url] on a form: as the audience is typed, ask how many people match.
// - form[data-upload]: send the file with a progress bar, then go where the server says.
// - [data-print]: print the page.
"use strict";
(function () {
  function csrf() {
    var el = document.querySelector('input[name="csrf_token"]');
    return el ? el.value : "";
  }
  function setFields(root, data) {
    Object.keys(data).forEach(function (key) {
      root.querySelectorAll('[data-field="' + key + '"]').forEach(function (el) {
        var value = data[key];
        el.textContent = value === null || value === undefined ? "–" : String(value);
      });
      root.querySelectorAll('[data-bar="' + key + '"]').forEach(function (el) {
        el.value = Number(data[key]) || 0;
      });
    });
  }
  function poll(el) {
    var url = el.getAttribute("data-poll");
    var every = Number(el.getAttribute("data-every") || "3000");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          if (data.items) {
            data.items.forEach(function (item) {
              var row = el.querySelector('[data-item="' + item.id + '"]');
              if (row) { setFields(row, item); }
            });
          }
          setFields(el, data);
          if (data.done && data.next) { window.location.assign(data.next); return; }
          if (!data.done) { window.setTimeout(tick, every); }
        })
        .catch(function () { window.setTimeout(tick, every * 2); });
    }
    window.setTimeout(tick, every);
  }
  function audienceCount(form) {
    var url = form.getAttribute("data-count-url");
    var input = form.querySelector('[name="audience"]');
    var out = document.getElementById("audience-count");
    if (!input || !out) { return; }
    var timer = null;
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        var body = new URLSearchParams();
        body.set("audience", input.value);
        fetch(url, {
          method: "POST", credentials: "same-origin", body: body,
          headers: { "X-CSRF-Token": csrf(), Accept: "application/json" }
        })
          .then(function (r) { return r.json(); })
          .then(function (data) {
            out.textContent = data.message;
            var pointer = document.getElementById("audience-pointer");
            if (pointer) { pointer.textContent = data.pointer || ""; pointer.hidden = !data.pointer; }
            input.setAttribute("aria-invalid", data.error ? "true" : "false");
          });
      }, 400);
    });
  }
  function upload(form) {
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) { return; }
      event.preventDefault();
      var bar = form.querySelector("progress");
      var status = form.querySelector("[data-upload-status]");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable && bar) { bar.hidden = false; bar.max = e.total; bar.value = e.loaded; }
      });
      xhr.addEventListener("load", function () {
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (data && data.next) { window.location.assign(data.next); return; }
        document.open(); document.write(xhr.responseText); document.close();
      });
      xhr.addEventListener("error", function () {
        if (status) { status.textContent = form.getAttribute("data-upload-failed") || "Upload failed"; }
      });
      xhr.send(new FormData(form));
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("form[data-count-url]").forEach(audienceCount);
    document.querySelectorAll("form[data-upload]").forEach(upload);
    document.querySelectorAll("[data-print]").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
  });
})();
