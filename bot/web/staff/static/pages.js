// Pages 4-8: forms with data-confirm ask first; the feedback page's live preview: as a text is written, ask the server for the exact message
// each language would get and what it costs as SMS (the same code that sends it). Nothing is
// stored until the form is saved; without this script the page shows the saved texts' preview.
"use strict";
(function () {
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (event) {
      if (!window.confirm(f.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  var form = document.getElementById("feedback-form");
  if (!form) { return; }
  var url = form.getAttribute("data-preview-url");
  var timer = null;
  var seq = 0;
  function query() {
    var params = new URLSearchParams();
    form.querySelectorAll("textarea[name^='text_'], input[name^='plan_']").forEach(function (el) {
      var code = el.name.replace(/^(text|plan)_/, "");
      var without = form.querySelector("input[name='without_" + code + "']");
      var value = el.value;
      if (el.name.indexOf("text_") === 0 && without && without.checked) { value = ""; }
      params.set(el.name, value);
    });
    return params.toString();
  }
  function show(data) {
    (data.languages || []).forEach(function (item) {
      var block = form.querySelector(".lang-block[data-lang='" + item.lang + "']");
      if (!block) { return; }
      var preview = block.querySelector(".sms-preview");
      var segments = block.querySelector("[data-role='segments']");
      var verdict = block.querySelector("[data-role='verdict']");
      if (preview) { preview.textContent = item.message; }
      if (segments) {
        segments.textContent = item.summary;
        segments.classList.toggle("over", !item.fits);
      }
      if (verdict) {
        verdict.textContent = item.verdict;
        verdict.className = item.fits ? "" : "fits-no";
      }
    });
  }
  function refresh() {
    var mine = ++seq;
    fetch(url + "?" + query(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) { if (mine === seq) { show(data); } })
      .catch(function () { /* the saved preview stays */ });
  }
  form.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 250);
  });
  form.addEventListener("change", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 50);
  });
}());
