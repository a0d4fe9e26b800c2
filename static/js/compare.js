// The compare page's form: a changed choice (metric, axes, "differences only") redraws the page
// at once, its URL holding every choice; without JS the form's Redraw button does the same.
// The charts, the fetched history among them, are run.js's.
(function () {
  "use strict";
  const form = document.querySelector(".js-compare-form");
  if (form) form.addEventListener("change", () => form.requestSubmit());
})();
