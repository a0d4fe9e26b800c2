// Run trees: expand and collapse rows in place, fetch children and "show more" pages as
// server-rendered rows, and keep the view's state (expanded, collapsed, selected) in the URL
// with history.replaceState, so a reload or a shared link shows the same view.
(function () {
  "use strict";

  // The query parameters a children request inherits from the page.
  const INHERITED = ["filter", "sort", "columns", "show_deleted", "per_page"];
  const FETCH_CONCURRENCY = 4;
  // Expand all stops past either bound: a sweep of sweeps can hold more rows than a page can show.
  const EXPAND_ALL_PARENTS = 200;
  const EXPAND_ALL_ROWS = 5000;

  const level = (row) => Number(row.dataset.level || 0);
  const twisty = (row) => row.querySelector(":scope > td .twisty");
  const isOpen = (row) => twisty(row)?.getAttribute("aria-expanded") === "true";

  // --- URL state ---------------------------------------------------------------------------

  function readIds(name) {
    return (new URLSearchParams(location.search).get(name) || "").split(",").filter(Boolean);
  }

  function writeIds(changes) {
    const query = new URLSearchParams(location.search);
    for (const [name, ids] of Object.entries(changes)) {
      if (ids.length) query.set(name, ids.join(","));
      else query.delete(name);
    }
    // Commas stay readable in the address bar; the server splits on them either way.
    const search = query.toString().replace(/%2C/g, ",");
    history.replaceState(history.state, "", location.pathname + (search ? "?" + search : "") + location.hash);
  }

  function remember(table, runId, open) {
    if (!table.hasAttribute("data-url-state")) return;
    let expanded = readIds("expanded").filter((id) => id !== runId);
    let collapsed = readIds("collapsed").filter((id) => id !== runId);
    const wasCollapsed = readIds("collapsed").includes(runId);
    const row = table.querySelector(`tr[data-run-id="${runId}"]`);
    // Rows the server opened on its own (context for a filter's matches) are remembered as
    // collapsed; rows the viewer opened, as expanded.
    if (open && !wasCollapsed) expanded.push(runId);
    if (!open && row && row.dataset.autoOpen === "1") collapsed.push(runId);
    writeIds({ expanded, collapsed });
  }

  function childQuery(table, extra) {
    const page = new URLSearchParams(location.search);
    const query = new URLSearchParams();
    for (const name of INHERITED) if (page.get(name)) query.set(name, page.get(name));
    // A table that chose its own columns (the run page's children) asks for those.
    if (table.dataset.columns) query.set("columns", table.dataset.columns);
    // The best-child column's metric, which the page may have chosen by default.
    if (table.dataset.best) query.set("best", table.dataset.best);
    for (const [name, value] of Object.entries(extra)) query.set(name, value);
    return query.toString();
  }

  // --- showing and hiding rows -------------------------------------------------------------

  function descendants(row) {
    const found = [];
    const base = level(row);
    for (let next = row.nextElementSibling; next && level(next) > base; next = next.nextElementSibling) found.push(next);
    return found;
  }

  function collapse(row) {
    twisty(row).setAttribute("aria-expanded", "false");
    for (const below of descendants(row)) below.hidden = true;
  }

  function reveal(row) {
    twisty(row).setAttribute("aria-expanded", "true");
    // Show each descendant unless one of its own ancestors below `row` is collapsed.
    let closedAt = Infinity;
    for (const below of descendants(row)) {
      const depth = level(below);
      if (depth > closedAt) continue;
      closedAt = Infinity;
      below.hidden = false;
      const control = twisty(below);
      if (control && control.getAttribute("aria-expanded") !== "true") closedAt = depth;
    }
  }

  function rowsFrom(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return Array.from(template.content.children);
  }

  function markSelected(rows) {
    const selected = new Set(readIds("selected"));
    for (const row of rows) {
      const box = row.querySelector('input[type=checkbox][name=run]');
      if (box) box.checked = selected.has(box.value);
    }
  }

  async function fetchRows(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok && response.status !== 400) throw new Error(`HTTP ${response.status}`);
    const rows = rowsFrom(await response.text());
    markSelected(rows);
    return rows;
  }

  async function expand(row) {
    const control = twisty(row);
    if (control.dataset.loaded === "1") {
      reveal(row);
      return;
    }
    control.classList.add("is-loading");
    control.setAttribute("aria-busy", "true");
    try {
      const query = childQuery(row.closest("table"), { level: level(row) + 1 });
      const rows = await fetchRows(control.dataset.childrenUrl + "?" + query);
      row.after(...rows);
      control.dataset.loaded = "1";
      control.setAttribute("aria-expanded", "true");
      control.removeAttribute("title");
    } catch (error) {
      control.title = "Could not load the child runs: " + error.message;
    } finally {
      control.classList.remove("is-loading");
      control.removeAttribute("aria-busy");
    }
  }

  async function showMore(moreRow, button) {
    button.disabled = true;
    button.textContent = "Loading…";
    try {
      const rows = await fetchRows(button.dataset.moreUrl + "&" + childQuery(moreRow.closest("table"), {}));
      moreRow.replaceWith(...rows);
    } catch (error) {
      button.disabled = false;
      button.textContent = "Retry";
      button.title = error.message;
    }
  }

  // Run `work` on every item, a few at a time (expand all on a page of 50 parents).
  async function eachLimited(items, work) {
    const queue = items.slice();
    const workers = Array.from({ length: FETCH_CONCURRENCY }, async () => {
      while (queue.length) await work(queue.shift());
    });
    await Promise.all(workers);
  }

  // --- selection and the compare link --------------------------------------------------------

  function updateCompare(selected) {
    for (const count of document.querySelectorAll(".js-selected-count")) count.textContent = selected.length;
    const link = document.querySelector(".js-compare");
    if (!link) return;
    link.textContent = `Compare (${selected.length})`;
    link.href = "/compare/?runs=" + selected.join(",");
    link.classList.toggle("is-disabled", selected.length === 0);
    if (selected.length) link.removeAttribute("aria-disabled");
    else link.setAttribute("aria-disabled", "true");
  }

  // --- wiring --------------------------------------------------------------------------------

  function init(table) {
    for (const row of table.querySelectorAll("tr.run-row")) {
      if (isOpen(row) && !readIds("expanded").includes(row.dataset.runId)) row.dataset.autoOpen = "1";
      const control = twisty(row);
      if (control && control.dataset.loaded === "1" && !isOpen(row)) row.dataset.autoOpen = "1";
    }

    table.addEventListener("click", async (event) => {
      const control = event.target.closest("button.twisty");
      if (control) {
        const row = control.closest("tr");
        if (isOpen(row)) {
          collapse(row);
          remember(table, row.dataset.runId, false);
        } else {
          await expand(row);
          if (isOpen(row)) remember(table, row.dataset.runId, true);
        }
        return;
      }
      const more = event.target.closest("button.more");
      if (more) showMore(more.closest("tr"), more);
    });

    table.addEventListener("change", (event) => {
      const box = event.target;
      if (!box.matches('input[type=checkbox][name=run]')) return;
      let selected = readIds("selected").filter((id) => id !== box.value);
      if (box.checked) selected.push(box.value);
      if (table.hasAttribute("data-url-state")) writeIds({ selected });
      updateCompare(selected);
    });
  }

  function visibleRuns() {
    return Array.from(document.querySelectorAll("table[data-tree] tr.run-row")).filter((row) => !row.hidden);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("table[data-tree]").forEach(init);

    // Expand all: every level, a level at a time, until nothing shown is closed, or the bound
    // is reached (the note says so, and the rest open by hand).
    document.querySelector(".js-expand-all")?.addEventListener("click", async (event) => {
      const button = event.currentTarget;
      const note = document.querySelector(".js-expand-note");
      button.disabled = true;
      if (note) note.hidden = true;
      const tried = new Set();
      let stopped = false;
      for (;;) {
        const closed = visibleRuns().filter((row) => twisty(row) && !isOpen(row) && !tried.has(row));
        if (!closed.length) break;
        const parents = Number(button.dataset.maxParents || EXPAND_ALL_PARENTS);
        const room = Math.min(parents - tried.size, EXPAND_ALL_ROWS - visibleRuns().length);
        if (room <= 0) {
          stopped = true;
          break;
        }
        const batch = closed.slice(0, room);
        batch.forEach((row) => tried.add(row));
        await eachLimited(batch, async (row) => {
          await expand(row);
          if (isOpen(row)) remember(row.closest("table"), row.dataset.runId, true);
        });
      }
      if (note && stopped) {
        note.textContent = `Stopped after opening ${tried.size} parents (${visibleRuns().length} rows shown); open the rest by hand.`;
        note.hidden = false;
      }
      button.disabled = false;
    });

    // Picking the best-child metric reloads the view as it is now (rows opened since the page
    // loaded included), with only `best` changed.
    document.querySelector(".js-best-form select")?.addEventListener("change", (event) => {
      const query = new URLSearchParams(location.search);
      query.set("best", event.target.value);
      query.delete("page");
      location.search = query.toString().replace(/%2C/g, ",");
    });

    // The column picker: every ticked key in one reload, the rest of the view (rows opened and
    // selected since the page loaded) kept. An empty `columns` means "chosen: none".
    document.querySelector(".js-columns-form")?.addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.currentTarget;
      const chosen = Array.from(form.querySelectorAll("input[type=checkbox][name=columns]:checked"), (box) => box.value);
      const query = new URLSearchParams(location.search);
      query.set("columns", chosen.join(","));
      query.delete("page");
      location.search = query.toString().replace(/%2C/g, ",");
    });

    // Acting on the selection: the runs ticked now (the URL keeps them), back to the view as it
    // is now; a delete asks first.
    document.querySelector(".js-act-form")?.addEventListener("submit", (event) => {
      const form = event.currentTarget;
      const button = event.submitter;
      form.elements.runs.value = readIds("selected").join(",");
      form.elements.next.value = location.pathname + location.search;
      if (button?.dataset.confirm && !window.confirm(button.dataset.confirm)) event.preventDefault();
    });

    // A goal switch comes back to the view as it is now, not as it was when the page loaded.
    document.querySelectorAll(".js-goal-switch").forEach((form) => {
      form.addEventListener("submit", () => {
        form.elements.next.value = location.pathname + location.search;
      });
    });

    document.querySelector(".js-collapse-all")?.addEventListener("click", () => {
      // Deepest first, so each row's state is remembered before its ancestors hide it.
      const open = visibleRuns().filter(isOpen).reverse();
      for (const row of open) {
        collapse(row);
        remember(row.closest("table"), row.dataset.runId, false);
      }
    });
  });
})();
