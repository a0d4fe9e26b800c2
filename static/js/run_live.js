// The run page, live: while the run or one of its children is RUNNING, static/js/live.js's
// poller asks `/runs/<id>/live/?since=` every few seconds; when the run changed, the page is
// fetched again and each part marked `data-live-part` (status, facts, metrics, summary,
// children, charts, images) is swapped for its new self, except one that holds the focus or a ticked
// child box, whose table rows are updated in place. Charts are redrawn with Plotly.react, so
// zoom and hover stay where plotly.js keeps them.
(function () {
  "use strict";

  function swap(fresh) {
    for (const part of document.querySelectorAll("[data-live-part]")) {
      const next = fresh.querySelector(`[data-live-part="${part.dataset.livePart}"]`);
      if (!next) continue;
      if (part.dataset.livePart === "charts") redraw(part, next);
      else if (part.dataset.livePart === "children") updateChildren(part, next);
      else if (!part.contains(document.activeElement) && part.innerHTML !== next.innerHTML) part.replaceWith(next);
    }
    document.dispatchEvent(new Event("runtree:parts-swapped")); // key_filter.js filters the new rows
  }

  // Children: rows matched by run id, so ticked boxes and opened rows survive; new ones added.
  function updateChildren(part, next) {
    const body = part.querySelector("tbody");
    const nextBody = next.querySelector("tbody");
    if (!body || !nextBody) {
      if (!part.contains(document.activeElement)) part.replaceWith(next);
      return;
    }
    part.querySelector("h2").replaceWith(next.querySelector("h2"));
    let previous = null;
    for (const row of Array.from(nextBody.rows)) {
      const existing = row.dataset.runId && body.querySelector(`tr[data-run-id="${row.dataset.runId}"]`);
      if (existing) {
        Array.from(row.cells).forEach((cell, index) => {
          const old = existing.cells[index];
          if (old && !old.classList.contains("select") && !old.querySelector(".twisty") && old.outerHTML !== cell.outerHTML && !old.contains(document.activeElement)) old.replaceWith(cell);
        });
        previous = existing;
      } else if (Number(row.dataset.level || 0) === 0) {
        if (previous) previous.after(row);
        else body.prepend(row);
        previous = row;
      }
    }
  }

  function redraw(part, next) {
    for (const container of part.querySelectorAll(".chart[data-figure]")) {
      const data = next.querySelector(`script#${CSS.escape(container.dataset.figure)}`);
      if (!data || !window.Plotly) continue;
      const figure = JSON.parse(data.textContent);
      window.Plotly.react(container, figure.data, figure.layout, { responsive: true, displaylogo: false });
    }
    // A chart fetched when it came into view (run.js) is fetched again once drawn; one not yet
    // seen will be fetched fresh when it is.
    for (const container of part.querySelectorAll(".chart[data-when-seen].js-plotly-plot")) {
      fetch(container.dataset.figureUrl, { headers: { Accept: "application/json" } })
        .then((response) => (response.ok ? response.json() : null))
        .then((figure) => figure && window.Plotly.react(container, figure.data, figure.layout, { responsive: true, displaylogo: false }))
        .catch(() => {}); // the chart keeps what it showed; the next change tries again
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const indicator = document.querySelector(".js-live[data-live-url]");
    if (!indicator || !window.RuntreeLive) return;
    window.RuntreeLive.poller(indicator, {
      url: (version) => indicator.dataset.liveUrl + "?since=" + encodeURIComponent(version),
      changed: async () => {
        const page = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
        if (!page.ok) throw new Error(`HTTP ${page.status}`);
        swap(new DOMParser().parseFromString(await page.text(), "text/html"));
      },
    });
  });
})();
