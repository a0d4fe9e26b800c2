// The run page's long params and metrics tables (templates/partials/key_filter.html): typing in
// a filter box shows only the rows whose key holds the text, case-insensitively, and says how
// many that is. The live refresh swaps the metrics table (run_live.js), which then asks again.
(function () {
  "use strict";

  function filter(input) {
    const table = document.getElementById(input.getAttribute("aria-controls"));
    if (!table) return;
    const needle = input.value.trim().toLowerCase();
    let shown = 0;
    let total = 0;
    for (const body of table.tBodies) {
      let shownHere = 0;
      for (const row of body.rows) {
        const key = row.querySelector("th[scope=row]");
        if (!key) continue; // a group's heading ("System metrics")
        total++;
        row.hidden = Boolean(needle) && !key.title.toLowerCase().includes(needle);
        if (!row.hidden) shownHere++;
      }
      const heading = body.querySelector("th[scope=rowgroup]");
      if (heading) heading.parentElement.hidden = shownHere === 0;
      shown += shownHere;
    }
    input.parentElement.querySelector("output").textContent = needle ? `${shown} of ${total}` : "";
  }

  function filterAll() {
    document.querySelectorAll(".js-key-filter").forEach(filter);
  }

  document.addEventListener("input", (event) => {
    if (event.target.matches(".js-key-filter")) filter(event.target);
  });
  document.addEventListener("runtree:parts-swapped", filterAll);
  window.addEventListener("pageshow", filterAll); // the text a browser restores on going back
})();
