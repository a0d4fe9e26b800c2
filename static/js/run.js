// The run page's metric-history charts: each figure dict (built in dashboard/charts.py) sits in
// a json_script element next to its container; plotly.js is served from the installed package.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    for (const container of document.querySelectorAll(".chart[data-figure]")) {
      const figure = JSON.parse(document.getElementById(container.dataset.figure).textContent);
      Plotly.newPlot(container, figure.data, figure.layout, { responsive: true, displaylogo: false });
    }
  });
})();
