// The compare page. Charts drawn from the runs' latest values come inline (run.js draws them);
// the metric history, whose data grows with the runs' histories, is fetched as a figure dict
// once the page is shown. A changed choice (metric, axes, "differences only") redraws the page
// at once, its URL holding every choice; without JS the form's Redraw button does the same.
(function () {
  "use strict";
  const form = document.querySelector(".js-compare-form");
  if (form) form.addEventListener("change", () => form.requestSubmit());

  async function drawFetched(container) {
    try {
      const response = await fetch(container.dataset.figureUrl, { headers: { Accept: "application/json" } });
      const figure = await response.json();
      if (!response.ok) throw new Error(figure.error || response.statusText);
      container.textContent = "";
      await Plotly.newPlot(container, figure.data, figure.layout, { responsive: true, displaylogo: false });
    } catch (error) {
      container.textContent = `The chart could not be loaded: ${error.message}`;
    } finally {
      container.removeAttribute("aria-busy");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".chart[data-figure-url]").forEach(drawFetched);
  });
})();
