// The run page, live, and the compare page of a parent's children or of sweeps: while the run or
// one of its children is RUNNING, static/js/live.js's poller asks `/runs/<id>/live/?since=` (for
// sweeps, `/compare/live/?parents=…&since=`) every few seconds; when the run changed, the page is
// fetched again and each part marked `data-live-part` (the run page's status, facts, metrics,
// summary, children, charts, images; the compare page's count, form, charts and table) is swapped
// for its new self, except one that holds the focus or a ticked child box, whose table rows are
// updated in place. Charts are redrawn with Plotly.react, so zoom and hover stay where plotly.js
// keeps them.
(function () {
  "use strict";

  // Resolves once every chart is redrawn: the poller waits for it, and for longer when it was slow.
  async function swap(fresh) {
    const redrawn = [];
    for (const part of document.querySelectorAll("[data-live-part]")) {
      const next = fresh.querySelector(`[data-live-part="${part.dataset.livePart}"]`);
      if (!next) continue;
      if (part.dataset.livePart === "charts") redrawn.push(...redraw(part, next));
      else if (part.dataset.livePart === "children") updateChildren(part, next);
      else if (!part.contains(document.activeElement) && part.innerHTML !== next.innerHTML) replaceKeepingScroll(part, next);
    }
    document.dispatchEvent(new Event("runtree:parts-swapped")); // key_filter.js filters the new rows
    await Promise.allSettled(redrawn);
  }

  // A table's own scroll box (a wide table on a phone, the compare page's) stays where the
  // viewer scrolled it.
  function replaceKeepingScroll(part, next) {
    const boxes = Array.from(part.querySelectorAll(".table-wrap"), (box) => [box.scrollLeft, box.scrollTop]);
    part.replaceWith(next);
    next.querySelectorAll(".table-wrap").forEach((box, index) => {
      if (boxes[index]) [box.scrollLeft, box.scrollTop] = boxes[index];
    });
  }

  // A page with charts loads run.js beside plotly.js: its react keeps the viewer's zoom.
  const react = (container, figure) => window.RuntreeCharts.react(container, figure);

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
    const redrawn = [];
    for (const container of part.querySelectorAll(".chart[data-figure]")) {
      const data = next.querySelector(`script#${CSS.escape(container.dataset.figure)}`);
      if (!data || !window.Plotly) continue;
      redrawn.push(react(container, JSON.parse(data.textContent)));
    }
    // A fetched chart (one drawn when it came into view, the compare page's history) is fetched
    // again once drawn; one not yet seen will be fetched fresh when it is. One the viewer zoomed
    // into holds that range's points at full resolution (run.js): it stays as it is.
    for (const container of part.querySelectorAll(".chart[data-figure-url].js-plotly-plot")) {
      if (container.dataset.zoomed) continue;
      const fetched = fetch(container.dataset.figureUrl, { headers: { Accept: "application/json" } })
        .then((response) => (response.ok ? response.json() : null))
        .then((figure) => figure && react(container, figure))
        .catch(() => {}); // the chart keeps what it showed; the next change tries again
      redrawn.push(fetched);
    }
    return redrawn;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const indicator = document.querySelector(".js-live[data-live-url]");
    if (!indicator || !window.RuntreeLive) return;
    window.RuntreeLive.poller(indicator, {
      url: (version) => {
        const url = new URL(indicator.dataset.liveUrl, location.href); // compare sweeps' has a query
        url.searchParams.set("since", version);
        return url.href;
      },
      changed: async () => {
        const page = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
        if (!page.ok) throw new Error(`HTTP ${page.status}`);
        await swap(new DOMParser().parseFromString(await page.text(), "text/html"));
      },
    });
  });
})();
