// Charts built in dashboard/charts.py: each figure dict sits in a json_script element named by
// its container's data-figure, or is fetched from its data-figure-url (the compare page's
// history, whose data grows with the runs' histories), asked for as the page loads. plotly.js is
// served from the installed package. A history chart (data-zoom-url) fetches the zoomed range again at
// full resolution when the viewer zooms, and the whole thinned history back on a double-click
// (autorange). The range travels as plotly has it: the server reads it (charts.ZoomRange). A live
// page (run_live.js) redraws charts through RuntreeCharts.refresh and draws new ones with drawNew.
(function () {
  "use strict";
  // On a touch screen plotly keeps its toolbar shown for good (there is no hover to bring it up),
  // on top of the chart's title and its "N points" note: there it is left out. A drag still
  // zooms and a double tap still resets.
  const touchOnly = window.matchMedia("(hover: none)").matches;
  const CONFIG = { responsive: true, displaylogo: false, displayModeBar: touchOnly ? false : "hover" };

  // A legend beside the plot is as wide as its longest name: on a phone, a compare page's history
  // of long run names left its lines a sliver, and the names were cut at the screen's edge, where
  // a sweep's runs differ. A narrow chart with such names goes without it: a line's hover names
  // its run, and the table below the charts gives each run's colour. (A legend under the plot, as
  // the run page's, ran into the axis title on a chart this short.) Short names keep theirs.
  const NARROW_CHART_PX = 600;
  const LONG_LEGEND_NAME = 16; // characters
  function fitLegend(container, figure) {
    const layout = figure.layout;
    const beside = layout.showlegend && !(layout.legend && layout.legend.orientation === "h");
    if (!beside || container.clientWidth >= NARROW_CHART_PX) return layout;
    const long = figure.data.some((trace) => trace.showlegend !== false && String(trace.name || "").length > LONG_LEGEND_NAME);
    return long ? { ...layout, showlegend: false } : layout;
  }

  // Every chart is drawn and redrawn through here. One uirevision for all: when a live page
  // (run_live.js) redraws a chart with new data, plotly.js keeps what the viewer changed, their
  // zoom and the lines they hid, where the new layout does not change it.
  function shown(container, figure) {
    return { ...fitLegend(container, figure), uirevision: "runtree" };
  }
  const react = (container, figure) => Plotly.react(container, figure.data, shown(container, figure), CONFIG);

  async function fetchFigure(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const figure = await response.json();
    if (!response.ok) throw new Error(figure.error || response.statusText);
    return figure;
  }

  // A history chart's URL for the x `range` (null: the whole thinned history). A run page's
  // chart names its keys (one stem); the compare page's URL names its metric.
  function zoomUrl(container, range) {
    const url = new URL(container.dataset.zoomUrl, window.location.href);
    for (const key of (container.layout.meta || {}).keys || []) url.searchParams.append("key", key);
    if (range) {
      url.searchParams.set("from", range[0]);
      url.searchParams.set("to", range[1]);
    }
    return url;
  }

  // Draws the figure at `url`, its x range set to `range` when given; false when a later request
  // took its place. A chart's latest request wins: a zoom asked for while a live update was on
  // its way (or the other way round) is not undone by the earlier answer.
  async function drawFrom(container, url, range) {
    const mine = (container.runtreeRequest = (container.runtreeRequest || 0) + 1);
    container.setAttribute("aria-busy", "true");
    try {
      const figure = await fetchFigure(url);
      if (mine !== container.runtreeRequest) return false;
      if (range) {
        figure.layout.xaxis.range = range;
        figure.layout.xaxis.autorange = false;
      }
      await react(container, figure);
      return true;
    } finally {
      if (mine === container.runtreeRequest) container.removeAttribute("aria-busy");
    }
  }

  function zoomable(container) {
    container.on("plotly_relayout", async (change) => {
      // A drag sends the two ends apart; Plotly.relayout(…, {"xaxis.range": [a, b]}) as a pair.
      const range = change["xaxis.range"] || ("xaxis.range[0]" in change ? [change["xaxis.range[0]"], change["xaxis.range[1]"]] : null);
      if (range === null && !change["xaxis.autorange"]) return;
      // Kept on the chart for live updates (refresh below): plotly.js does not count a range
      // set through react as the viewer's, so uirevision alone let the next update undo it.
      container.runtreeZoom = range;
      try {
        if (await drawFrom(container, zoomUrl(container, range), range)) container.dataset.zoomed = range ? "1" : "";
      } catch (error) {
        container.title = `The zoomed range could not be loaded: ${error.message}`;
      }
    });
  }

  // A live page (run_live.js) redraws a drawn chart with its new `figure`, or fetches it again
  // (a fetched chart has none). A zoomed history chart asks for its range again instead, at full
  // resolution: it takes in new points and new runs and keeps the viewer's range.
  function refresh(container, figure) {
    const range = container.runtreeZoom;
    if (range && container.dataset.zoomUrl) return drawFrom(container, zoomUrl(container, range), range);
    if (figure) {
      container.runtreeRequest = (container.runtreeRequest || 0) + 1; // an older fetch's answer is stale now
      return react(container, figure);
    }
    return drawFrom(container, container.dataset.figureUrl, null);
  }

  async function draw(container, figure) {
    await Plotly.newPlot(container, figure.data, shown(container, figure), CONFIG);
    if (container.dataset.zoomUrl) zoomable(container);
    // A band's traces carry the URL of its children's comparison.
    container.on("plotly_click", (event) => {
      const meta = event.points.length && event.points[0].data.meta;
      if (meta && meta.link) window.location.assign(meta.link);
    });
  }

  async function drawFetched(container, pendingFigure) {
    try {
      const figure = await pendingFigure;
      container.textContent = "";
      await draw(container, figure);
    } catch (error) {
      container.textContent = `The chart could not be loaded: ${error.message}`;
    } finally {
      container.removeAttribute("aria-busy");
    }
  }

  const WEBGL_TRACES = new Set(["parcoords", "scattergl", "splom", "heatmapgl", "pointcloud"]);
  const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

  async function drawInline(container, figure) {
    await nextTask();
    try {
      await draw(container, figure);
    } catch (error) {
      console.error(error); // the other charts are drawn all the same
      container.textContent = `The chart could not be drawn: ${error.message}`;
    }
  }

  // Chart options live in the URL: a change redraws the page with them. Listened for on the
  // document: a live page (run_live.js) may swap the form for a new one.
  document.addEventListener("change", (event) => {
    const form = event.target.closest(".js-chart-options");
    if (form) form.requestSubmit();
  });
  document.addEventListener("input", (event) => {
    const slider = event.target.closest(".js-chart-options input[type=range]");
    if (slider) slider.nextElementSibling.value = slider.value;
  });

  // Charts the page did not bring (a run page's past its first dozen) are fetched and drawn as
  // they come within two screens of the viewport, one at a time.
  let drawing = Promise.resolve();
  const whenSeen = new IntersectionObserver(
    (entries) => {
      for (const entry of entries.filter((seen) => seen.isIntersecting)) {
        whenSeen.unobserve(entry.target);
        const pending = fetchFigure(entry.target.dataset.figureUrl);
        pending.catch(() => {}); // reported in its chart when its turn comes
        drawing = drawing.then(() => drawFetched(entry.target, pending));
      }
    },
    { rootMargin: "200% 0px" },
  );

  // Draws each chart under `root` not drawn (nor being drawn) yet: the page's as it loads, and
  // those a live update brings (run_live.js), a metric's first points for one.
  async function drawNew(root) {
    const fresh = (selector) => Array.from(root.querySelectorAll(selector)).filter((container) => !container.runtreeDrawn);
    const charts = fresh(".chart[data-figure], .chart[data-figure-url]");
    charts.forEach((container) => (container.runtreeDrawn = true));
    charts.filter((chart) => chart.matches("[data-figure-url][data-when-seen]")).forEach((chart) => whenSeen.observe(chart));
    // Fetched figures are asked for at once, so the server builds them while the others draw.
    const fetched = charts
      .filter((chart) => chart.matches("[data-figure-url]:not([data-when-seen])"))
      .map((container) => {
        const pending = fetchFigure(container.dataset.figureUrl);
        pending.catch(() => {}); // reported in its chart when its turn comes, not as unhandled
        return [container, pending];
      });
    // One chart per task, each shown as soon as it is drawn, the page answering input in between;
    // charts drawn with WebGL last. A compare page's parallel coordinates of 1,000 runs take ~2.5 s
    // in software-rendered WebGL (2 cores): drawn first and in one go with the rest, they held
    // every chart and the page for that long (bench/compare_page.py's data, headless Chromium).
    const inline = charts
      .filter((chart) => chart.matches("[data-figure]"))
      .map((container) => [container, JSON.parse(document.getElementById(container.dataset.figure).textContent)]);
    const webgl = ([, figure]) => figure.data.some((trace) => WEBGL_TRACES.has(trace.type));
    for (const [container, figure] of inline.filter((chart) => !webgl(chart))) await drawInline(container, figure);
    for (const [container, pending] of fetched) await drawFetched(container, pending);
    for (const [container, figure] of inline.filter(webgl)) await drawInline(container, figure);
  }

  window.RuntreeCharts = { refresh, drawNew };
  // A live page loads this script only once its first chart arrives, after the page has loaded.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => drawNew(document));
  else drawNew(document);
})();
