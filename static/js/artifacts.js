// The run page's Artifacts section: a folder's rows, or a file's preview, are fetched the first
// time its <details> opens (server-rendered partials, escaped by Django's templates).
(function () {
  "use strict";
  document.addEventListener(
    "toggle",
    async (event) => {
      const details = event.target;
      if (!(details instanceof HTMLDetailsElement) || !details.open || details.dataset.loaded) return;
      const section = details.closest("[data-artifacts]");
      const body = details.querySelector(":scope > .artifact-body");
      if (!section || !body) return;
      const base = details.classList.contains("artifact-folder") ? section.dataset.folderUrl : section.dataset.previewUrl;
      details.dataset.loaded = "1";
      try {
        const response = await fetch(`${base}?path=${encodeURIComponent(details.dataset.path)}`, { credentials: "same-origin" });
        if (!response.ok) throw new Error(response.statusText);
        body.innerHTML = await response.text();
      } catch (error) {
        body.textContent = "Could not load this; close and open it to try again.";
        delete details.dataset.loaded;
      }
    },
    true, // "toggle" does not bubble
  );
})();
