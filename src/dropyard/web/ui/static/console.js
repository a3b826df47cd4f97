// Dropyard console: copy buttons, and the wizard's detail fields switching as soon as the
// method changes. Every page works without this file (the wizard has "Update fields").
(function () {
  "use strict";

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target || !navigator.clipboard) { return; }
    var label = button.firstChild;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        label.textContent = "Copied";
        window.setTimeout(function () { label.textContent = "Copy"; }, 2000);
      });
    });
  });

  var form = document.querySelector("form.wizard[data-step='method']");
  if (!form) { return; }
  var fields = document.getElementById("detail-fields");
  var shown = document.getElementById("f-shown");
  var refresh = document.getElementById("refresh-fields");
  var templates = {};
  var current = shown.value;
  form.querySelectorAll("template[data-combination]").forEach(function (t) {
    templates[t.getAttribute("data-combination")] = t;
  });
  if (refresh) { refresh.parentNode.hidden = true; }

  function checked(name) {
    var input = form.querySelector("input[name='" + name + "']:checked");
    return input ? input.value : "";
  }

  function update() {
    var method = checked("method");
    var first = null;
    form.querySelectorAll("[data-methods]").forEach(function (choice) {
      var offered = choice.getAttribute("data-methods").split(" ").indexOf(method) >= 0;
      var radio = choice.querySelector("input");
      radio.disabled = !offered;
      choice.classList.toggle("unavailable", !offered);
      if (!offered) { radio.checked = false; } else if (!first) { first = radio; }
    });
    if (!checked("methodology") && first) { first.checked = true; }
    var combination = method + ":" + checked("methodology");
    if (combination === current || !templates[combination]) { return; }
    var saved = document.createElement("template");
    while (fields.firstChild) { saved.content.appendChild(fields.firstChild); }
    templates[current] = saved;
    fields.appendChild(templates[combination].content.cloneNode(true));
    current = combination;
    shown.value = combination;
  }

  form.querySelectorAll("input[data-combination]").forEach(function (input) {
    input.addEventListener("change", update);
  });
}());
