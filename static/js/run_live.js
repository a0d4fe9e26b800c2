// The run page, live, and the compare page of a parent's children or of sweeps: while the run or
// one of its children is RUNNING, static/js/live.js's poller asks `/runs/<id>/live/?since=` (for
// sweeps, `/compare/live/?parents=…&since=`) every few seconds; when the run changed, the page is
// fetched again and each part marked `data-live-part` (the run page's status, facts, metrics,
// summary, bands, importance, children, charts, images; the compare page's count, form, charts
// and table) is swapped for its new self, except one that holds the focus or a ticked child box,
// whose table rows are updated in place. A part the page has nothing for yet is rendered empty,
// so what arrives later (a metric's first points) has its place. Charts already drawn move into
// the new part and are redrawn with their new data (run.js's refresh), keeping the viewer's zoom.
(function () {
  "use strict";

  // Resolves once every chart is redrawn: the poller waits for it, and for longer when it was slow.
  async function swap(fresh) {
    // A part this page has no place for (a parent's compare page that had no children: its form,
    // table and charts come with the first): the page's shape changed, so it is loaded again.
    const missing = Array.from(fresh.querySelectorAll("[data-live-part]")).some(
      (next) => !document.querySelector(`[data-live-part="${CSS.escape(next.dataset.livePart)}"]`),
    );
    if (missing) return location.reload();
    if (!window.RuntreeCharts && fresh.querySelector("[data-live-part] .chart")) return firstCharts(fresh);
    const redrawn = [];
    for (const part of document.querySelectorAll("[data-live-part]")) {
      const next = fresh.querySelector(`[data-live-part="${part.dataset.livePart}"]`);
      if (!next) continue;
      if (part.dataset.livePart === "children") updateChildren(part, next);
      else if (window.RuntreeCharts && (part.querySelector(".chart") || next.querySelector(".chart"))) redrawn.push(...swapCharts(part, next));
      else if (!part.contains(document.activeElement) && part.innerHTML !== next.innerHTML) replaceKeepingScroll(part, next);
    }
    document.dispatchEvent(new Event("runtree:parts-swapped")); // key_filter.js filters the new rows
    await Promise.allSettled(redrawn);
  }

  // A page that loaded with no chart has no plotly.js either: the parts are swapped, then the
  // fresh page's chart scripts (marked data-charts) are loaded, one after the other, and run.js
  // draws every chart there is.
  async function firstCharts(fresh) {
    for (const part of document.querySelectorAll("[data-live-part]")) {
      const next = fresh.querySelector(`[data-live-part="${part.dataset.livePart}"]`);
      if (next && !part.contains(document.activeElement) && part.innerHTML !== next.innerHTML) replaceKeepingScroll(part, next);
    }
    document.dispatchEvent(new Event("runtree:parts-swapped"));
    for (const script of fresh.querySelectorAll("script[data-charts]")) {
      if (document.querySelector(`script[src="${CSS.escape(script.getAttribute("src"))}"]`)) continue;
      await new Promise((resolve, reject) => {
        const loaded = document.createElement("script");
        loaded.src = script.getAttribute("src");
        loaded.dataset.charts = "";
        loaded.onload = resolve;
        loaded.onerror = () => reject(new Error(`${loaded.src} did not load`));
        document.body.append(loaded);
      });
    }
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

  // A chart is the same chart in the fresh page when it has the same figure id, id or URL.
  const chartKey = (chart) => chart.dataset.figure || chart.id || chart.dataset.figureUrl || "";

  // A part with charts: the fresh part takes the old one's place with each chart of the old that
  // it still has moved into it (drawn, zoomed, its lines hidden, or waiting to be drawn as it
  // nears the viewport), so only the charts that are new are drawn from nothing. A part holding
  // the focus (a chart option being chosen) stays; its charts are redrawn all the same.
  function swapCharts(part, next) {
    const old = new Map(Array.from(part.querySelectorAll(".chart"), (chart) => [chartKey(chart), chart]));
    const figures = next; // the fresh figures' json_script elements, wherever the part ends up
    let shown = part;
    if (!part.contains(document.activeElement)) {
      for (const chart of next.querySelectorAll(".chart")) {
        const kept = old.get(chartKey(chart));
        if (kept) chart.replaceWith(kept);
      }
      replaceKeepingScroll(part, next);
      shown = next;
    }
    const redrawn = [];
    for (const chart of shown.querySelectorAll(".chart.js-plotly-plot")) {
      const inFresh = Array.from(figures.querySelectorAll(".chart")).some((candidate) => chartKey(candidate) === chartKey(chart));
      if (!inFresh) continue; // gone from the fresh page, whose part could not take its place: left as it was
      const data = chart.dataset.figure && figures.querySelector(`script#${CSS.escape(chart.dataset.figure)}`);
      if (chart.dataset.figure && !data) continue;
      // A failed fetch leaves the chart as it was; the next change tries again.
      redrawn.push(Promise.resolve(window.RuntreeCharts.refresh(chart, data ? JSON.parse(data.textContent) : null)).catch(() => {}));
    }
    if (shown === next) redrawn.push(window.RuntreeCharts.drawNew(next));
    return redrawn;
  }

  const level = (row) => Number(row.dataset.level || 0);

  // Children: rows matched by run id, so opened rows survive; new ones added, and those the
  // page no longer shows (pushed to the next page by newer children) gone with their subtree, so
  // the page keeps its size; the header (its metric columns) and the pager follow the fresh page.
  function updateChildren(part, next) {
    const body = part.querySelector("tbody");
    const nextBody = next.querySelector("tbody");
    if (!body || !nextBody) {
      if (!part.contains(document.activeElement)) part.replaceWith(next);
      return;
    }
    part.querySelector("h2").replaceWith(next.querySelector("h2"));
    const head = part.querySelector("thead");
    const nextHead = next.querySelector("thead");
    if (head && nextHead && head.innerHTML !== nextHead.innerHTML) head.replaceWith(nextHead);
    part.querySelector("table").dataset.columns = next.querySelector("table").dataset.columns || "";
    // Read before the loop below moves the new rows out of the fresh page into this one.
    const shown = new Set(Array.from(nextBody.rows, (row) => row.dataset.runId).filter(Boolean));
    let previous = null;
    for (const row of Array.from(nextBody.rows)) {
      const existing = row.dataset.runId && body.querySelector(`tr[data-run-id="${row.dataset.runId}"]`);
      if (existing) {
        updateCells(existing, row);
        previous = existing;
      } else if (level(row) === 0) {
        if (previous) {
          while (previous.nextElementSibling && level(previous.nextElementSibling) > 0) previous = previous.nextElementSibling;
          previous.after(row);
        } else body.prepend(row);
        previous = row;
      }
    }
    for (const row of Array.from(body.rows)) {
      if (row.isConnected && level(row) === 0 && row.dataset.runId && !shown.has(row.dataset.runId)) removeWithSubtree(row);
    }
    const pager = part.querySelector(".pager");
    const nextPager = next.querySelector(".pager");
    if (pager && nextPager) {
      if (pager.innerHTML !== nextPager.innerHTML && !pager.contains(document.activeElement)) pager.replaceWith(nextPager);
    } else if (pager) pager.remove();
    else if (nextPager) part.append(nextPager);
  }

  // A row's cells, one by one, except the viewer's (its selection box, its expand button); a row
  // drawn before a metric column appeared gains that cell.
  function updateCells(existing, row) {
    Array.from(row.cells).forEach((cell, index) => {
      const old = existing.cells[index];
      if (!old) existing.append(cell.cloneNode(true));
      else if (!old.classList.contains("select") && !old.querySelector(".twisty") && old.outerHTML !== cell.outerHTML && !old.contains(document.activeElement)) old.replaceWith(cell.cloneNode(true));
    });
    while (existing.cells.length > row.cells.length) existing.lastElementChild.remove();
  }

  function removeWithSubtree(row) {
    while (row.nextElementSibling && level(row.nextElementSibling) > level(row)) row.nextElementSibling.remove();
    row.remove();
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
      changed: async (response) => {
        // The poll's answer has no body to speak of, but one left unread was reported by
        // Chromium as an aborted request (net::ERR_ABORTED) once the response was dropped.
        await response.arrayBuffer();
        const page = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
        if (!page.ok) throw new Error(`HTTP ${page.status}`);
        await swap(new DOMParser().parseFromString(await page.text(), "text/html"));
      },
    });
  });
})();
