// Live tree: while any run of the experiment is RUNNING, ask the server every few seconds what
// changed since the version the page shows (`live/?since=`). Nothing changed: a 204, and the
// next poll waits a little longer. Something changed: the rows of the view as it is now (the
// URL holds its state) and the toolbar's count, merged into the table row by row, so the rows
// opened, the boxes ticked, the scroll position, an open menu and the focused element all stay
// as they are; a run that left the view (deleted, or no longer matching the filter) goes. Polling
// stops once nothing runs and nothing changed for a minute; "Watch" starts it again. A page that
// shows no runs yet (an empty experiment) keeps asking, slowly, until its first runs arrive.
(function () {
  "use strict";

  const FASTEST = 2000; // ms between polls while things change
  const SLOWEST = 30000; // ms at most, after a run of unchanged polls
  const QUIET = 60000; // stop this long after the last change once nothing runs
  const WAITING = 10000; // ms between polls of a page waiting for its first runs
  // A page slow to bring up to date waits this many times as long as its last update took before
  // it asks again, so that updating takes at most a fifth of the page's time. Updating a compare
  // page of 10,000 runs took 4.0 s in headless Chromium (0.26 s to fetch, 3.7 s to redraw its
  // charts), of 1,000 runs 0.65 s (2026-12-05): every 2 s, the first would never be idle.
  const IDLE_PER_BUSY = 4;

  const level = (row) => Number(row.dataset.level || 0);
  const twisty = (row) => row.querySelector(":scope > td .twisty");
  const isOpen = (row) => twisty(row)?.getAttribute("aria-expanded") === "true";

  // Polls `url()` while the page is live, drives the indicator and its switch, and hands a
  // 200 answer to `changed(response)`; while `waiting()` (the page shows nothing yet), it never
  // goes idle. Shared with the run page (static/js/run_live.js).
  function poller(indicator, { url, changed, waiting = () => false }) {
    let version = indicator.dataset.version;
    let running = Number(indicator.dataset.running || 0);
    let delay = FASTEST;
    let lastChange = running ? Date.now() : 0;
    let paused = false;
    let timer = null;
    const text = indicator.querySelector(".js-live-text");
    const toggle = indicator.querySelector(".js-live-toggle");

    function show(state, message) {
      indicator.dataset.state = state;
      if (state === "on") text.textContent = `Live: ${running} running`;
      else if (state === "paused") text.textContent = "Live updates paused";
      else if (state === "idle") text.textContent = "Not live: nothing running";
      else if (state === "waiting") text.textContent = "Live: waiting for runs";
      else text.textContent = "Live: " + message;
      const polling = state === "on" || state === "error" || state === "waiting";
      toggle.textContent = polling ? "Pause" : state === "paused" ? "Resume" : "Watch";
      toggle.setAttribute("aria-pressed", state === "paused" ? "true" : "false");
    }

    toggle.addEventListener("click", () => {
      if (["on", "error", "waiting"].includes(indicator.dataset.state)) {
        paused = true;
        clearTimeout(timer);
        timer = null;
        show("paused");
      } else {
        paused = false;
        lastChange = Date.now();
        delay = FASTEST;
        poll();
      }
    });

    function schedule() {
      clearTimeout(timer);
      timer = null;
      if (paused) return show("paused");
      const quiet = !running && Date.now() - lastChange > QUIET;
      if (quiet && !waiting()) return show("idle");
      if (indicator.dataset.state !== "error") show(quiet ? "waiting" : "on");
      // A hidden tab asks nothing; it polls again when shown (visibilitychange below).
      if (!document.hidden) timer = setTimeout(poll, quiet ? Math.max(delay, WAITING) : delay);
    }

    async function poll() {
      timer = null;
      try {
        const response = await fetch(url(version), { credentials: "same-origin", cache: "no-store" });
        if (response.status !== 200 && response.status !== 204) throw new Error(`HTTP ${response.status}`);
        running = Number(response.headers.get("X-Runtree-Running") || 0);
        if (response.status === 200) {
          const started = performance.now();
          await changed(response);
          lastChange = Date.now();
          delay = Math.max(FASTEST, Math.round(IDLE_PER_BUSY * (performance.now() - started)));
        } else {
          delay = Math.min(SLOWEST, Math.round(delay * 1.5));
        }
        version = response.headers.get("X-Runtree-Version") || version;
        indicator.dataset.state = "on"; // schedule() says which: on, or still waiting
      } catch (error) {
        delay = Math.min(SLOWEST, delay * 2);
        show("error", "could not reach the server, retrying");
      }
      schedule();
    }

    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !timer && ["on", "waiting"].includes(indicator.dataset.state)) poll();
    });

    schedule();
  }

  window.RuntreeLive = { poller };

  function start(table, indicator) {
    const body = table.tBodies[0];

    function liveQuery(version) {
      const query = new URLSearchParams(location.search);
      // The columns and best-child metric the page shows (it may have chosen them by default).
      query.set("columns", table.dataset.columns || "");
      // On the default columns, the answer also names defaults that came since (a param the sweep
      // has started to vary), for the notice below: the rows keep the columns the header has.
      if ("columnsDefault" in table.dataset) query.set("columns_default", "1");
      if (table.dataset.best) query.set("best", table.dataset.best);
      query.set("since", version);
      return query.toString();
    }

    // The box that says there are no runs (yet): the page waits for them while it is shown.
    const emptyBox = () => document.querySelector(".js-tree-empty");

    poller(indicator, {
      url: (version) => table.dataset.liveUrl + "?" + liveQuery(version),
      waiting: () => Boolean(emptyBox()) && !body.querySelector("tr[data-run-id]"),
      changed: async (response) => {
        const fresh = parse(await response.text());
        merge(fresh.rows);
        removeGone(fresh.rows);
        if (body.querySelector("tr[data-run-id]")) emptyBox()?.remove();
        const summary = document.querySelector(".js-tree-summary");
        if (summary && fresh.summary && summary.innerHTML !== fresh.summary.innerHTML) summary.innerHTML = fresh.summary.innerHTML;
        const notice = document.querySelector(".js-columns-notice");
        if (notice && fresh.columns && notice.innerHTML !== fresh.columns.innerHTML) {
          notice.innerHTML = fresh.columns.innerHTML;
          notice.hidden = !fresh.columns.innerHTML.trim();
        }
      },
    });

    // --- merging fresh rows into the table -----------------------------------------------------

    function parse(html) {
      const template = document.createElement("template");
      template.innerHTML = html.trim();
      const children = Array.from(template.content.children);
      return {
        rows: children.filter((row) => row.tagName === "TR"),
        summary: children.find((element) => element.hasAttribute("data-live-summary")),
        columns: children.find((element) => element.hasAttribute("data-live-columns")),
      };
    }

    // The server sends every root of the page it shows, and every child of a parent it shows
    // open, unless a "show more" row says there are more than it sent (the viewer may have
    // fetched those): a row it no longer sends from either has left the view, with its subtree.
    function removeGone(rows) {
      const sent = new Set(rows.map((row) => row.dataset.runId).filter(Boolean));
      const cutShort = new Set(rows.filter((row) => row.classList.contains("more-row")).map((row) => row.dataset.parent));
      const sentWhole = new Set(rows.map((row) => row.dataset.parent).filter((parent) => parent && !cutShort.has(parent)));
      for (const row of Array.from(body.querySelectorAll("tr[data-run-id]"))) {
        if (!row.isConnected || sent.has(row.dataset.runId)) continue;
        if (level(row) === 0 || sentWhole.has(row.dataset.parent)) removeWithSubtree(row);
      }
    }

    function removeWithSubtree(row) {
      while (row.nextElementSibling && level(row.nextElementSibling) > level(row)) row.nextElementSibling.remove();
      row.remove();
    }

    function find(fresh) {
      if (fresh.dataset.runId) return body.querySelector(`tr[data-run-id="${fresh.dataset.runId}"]`);
      if (fresh.classList.contains("more-row")) return body.querySelector(`tr.more-row[data-parent="${fresh.dataset.parent}"]`);
      return null;
    }

    function selectedIds() {
      return new Set((new URLSearchParams(location.search).get("selected") || "").split(",").filter(Boolean));
    }

    function merge(rows) {
      const selected = selectedIds();
      let previous = null;
      for (const fresh of rows) {
        const existing = find(fresh);
        if (existing) {
          if (existing.classList.contains("more-row")) updateMore(existing, fresh);
          else updateRun(existing, fresh);
          previous = existing;
        } else {
          insert(fresh, previous, selected);
          previous = fresh;
        }
      }
    }

    // A new row goes after the row before it in the server's order, past that row's own
    // descendants; it is hidden when its parent is closed or hidden.
    function insert(fresh, previous, selected) {
      let anchor = previous;
      if (anchor) {
        while (anchor.nextElementSibling && level(anchor.nextElementSibling) > level(fresh)) anchor = anchor.nextElementSibling;
        anchor.after(fresh);
      } else {
        body.prepend(fresh);
      }
      const parent = fresh.dataset.parent && body.querySelector(`tr[data-run-id="${fresh.dataset.parent}"]`);
      fresh.hidden = Boolean(parent) && (parent.hidden || !isOpen(parent));
      const box = fresh.querySelector("input[type=checkbox][name=run]");
      if (box) box.checked = selected.has(box.value);
      if (fresh.dataset.runId) fresh.classList.add("is-new");
    }

    function updateRun(existing, fresh) {
      for (const name of ["class", "aria-label"]) {
        const value = fresh.getAttribute(name);
        if (value === null) existing.removeAttribute(name);
        else if (existing.getAttribute(name) !== value) existing.setAttribute(name, value);
      }
      const cells = Array.from(existing.cells);
      Array.from(fresh.cells).forEach((cell, index) => {
        const old = cells[index];
        // The selection box is the viewer's; never replaced.
        if (!old || old.classList.contains("select")) return;
        // The expand button keeps its state (open, children loaded) inside a refreshed name cell.
        const oldTwisty = old.querySelector(".twisty");
        const newTwisty = cell.querySelector(".twisty");
        if (oldTwisty && newTwisty) newTwisty.replaceWith(oldTwisty.cloneNode(true));
        if (cell.outerHTML === old.outerHTML) return;
        replaceKeepingFocus(old, cell);
      });
    }

    function updateMore(existing, fresh) {
      const note = existing.querySelector(".muted");
      const freshNote = fresh.querySelector(".muted");
      if (note && freshNote) note.textContent = freshNote.textContent;
      const button = existing.querySelector("button.more");
      const freshButton = fresh.querySelector("button.more");
      if (button && freshButton && !button.disabled) button.dataset.moreUrl = freshButton.dataset.moreUrl;
    }

    // Replace a cell; if focus was inside it, focus the same control in the new one.
    function replaceKeepingFocus(old, cell) {
      const focused = document.activeElement;
      let path = null;
      if (focused && old.contains(focused) && focused !== old) {
        path = focused.className ? "." + Array.from(focused.classList).join(".") : focused.tagName.toLowerCase();
      }
      old.replaceWith(cell);
      if (path) cell.querySelector(path)?.focus({ preventScroll: true });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const table = document.querySelector("table[data-live-url]");
    const indicator = document.querySelector(".js-live");
    if (table && indicator) start(table, indicator);
  });
})();
