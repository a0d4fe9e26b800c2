// Charts built in dashboard/charts.py: each figure dict sits in a json_script element named by
// its container's data-figure; plotly.js is served from the installed package. A history chart
// (data-zoom-url) fetches the zoomed range again at full resolution when the viewer zooms, and
// the whole thinned history back on a double-click (autorange).
(function () {
  "use strict";
  const CONFIG = { responsive: true, displaylogo: false };

  // Plotly's x range → the stored unit the server filters on: a step, or epoch milliseconds.
  function toStored(value, layout) {
    const meta = layout.meta || {};
    if (meta.x === "wall") {
      // Plotly's date axis gives "2023-11-14 22:13:21.5", in UTC as the epoch ms it was drawn from.
      return Math.round(new Date(String(value).replace(" ", "T") + "Z").getTime());
    }
    if (meta.x === "relative") return Math.round(meta.origin + Number(value) * 1000);
    return Math.round(Number(value));
  }

  function zoomable(container) {
    let request = 0;
    container.on("plotly_relayout", async (change) => {
      const layout = container.layout;
      // A drag sends the two ends apart; Plotly.relayout(…, {"xaxis.range": [a, b]}) as a pair.
      const range = change["xaxis.range"] || ("xaxis.range[0]" in change ? [change["xaxis.range[0]"], change["xaxis.range[1]"]] : null);
      const zoomedIn = range !== null;
      if (!zoomedIn && !change["xaxis.autorange"]) return;
      const url = new URL(container.dataset.zoomUrl, window.location.href);
      for (const key of layout.meta.keys) url.searchParams.append("key", key);
      if (zoomedIn) {
        url.searchParams.set("from", toStored(range[0], layout));
        url.searchParams.set("to", toStored(range[1], layout));
      }
      const mine = ++request;
      container.setAttribute("aria-busy", "true");
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error(response.statusText);
        const figure = await response.json();
        if (mine !== request) return; // a later zoom has been asked for
        if (zoomedIn) {
          figure.layout.xaxis.range = range;
          figure.layout.xaxis.autorange = false;
        }
        await Plotly.react(container, figure.data, figure.layout, CONFIG);
        container.dataset.zoomed = zoomedIn ? "1" : "";
      } catch (error) {
        container.title = `The zoomed range could not be loaded: ${error.message}`;
      } finally {
        container.removeAttribute("aria-busy");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const container of document.querySelectorAll(".chart[data-figure]")) {
      const figure = JSON.parse(document.getElementById(container.dataset.figure).textContent);
      Plotly.newPlot(container, figure.data, figure.layout, CONFIG).then(() => {
        if (container.dataset.zoomUrl) zoomable(container);
        // A band's centre line carries the URL of its children's comparison.
        container.on("plotly_click", (event) => {
          const meta = event.points.length && event.points[0].data.meta;
          if (meta && meta.link) window.location.assign(meta.link);
        });
      });
    }
    // Chart options live in the URL: a change redraws the page with them.
    for (const form of document.querySelectorAll(".js-chart-options")) {
      form.addEventListener("change", () => form.requestSubmit());
      const slider = form.querySelector("input[type=range]");
      if (slider) slider.addEventListener("input", () => (slider.nextElementSibling.value = slider.value));
    }
  });
})();
