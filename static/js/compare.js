// The compare page: a changed choice (metric, axes, "differences only") redraws the page at once,
// its URL holding every choice. Without JS, the form's Redraw button does the same.
(function () {
  "use strict";
  const form = document.querySelector(".js-compare-form");
  if (!form) return;
  form.addEventListener("change", () => form.requestSubmit());
})();
