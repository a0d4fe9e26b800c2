// The compare page's form: a changed choice (metric, axes, "differences only") redraws the page
// at once, its URL holding every choice; without JS the form's Redraw button does the same.
// The charts, the fetched history among them, are run.js's.
(function () {
  "use strict";
  // Listened for on the document: a live page (run_live.js) may swap the form for a new one.
  document.addEventListener("change", (event) => {
    const form = event.target.closest(".js-compare-form");
    if (form) form.requestSubmit();
  });
})();
