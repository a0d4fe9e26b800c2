// MLflow UI links: the mlflow client prints `<host>/#/experiments/<id>/runs/<run_id>` after every
// run. The part after `#` never reaches the server, so only the page can send the viewer on to
// the run, experiment or model it names. Loaded from base.html's <head> (a file, not an inline
// script: the Content-Security-Policy forbids those), so the experiments list never flashes first.
(function () {
  "use strict";

  const hash = location.hash;
  if (!hash.startsWith("#/")) return;
  // `#/experiments/4/runs/<id>?workspace=x`: the query inside the fragment is MLflow's own.
  const [route, fragmentQuery] = hash.slice(1).split("?", 2);
  const parts = route.split("/").filter(Boolean).map(decodeURIComponent);
  const path = (...segments) => "/" + segments.map(encodeURIComponent).join("/") + "/";

  function target() {
    const [section, first, sub, second] = parts;
    if (section === "experiments" && /^\d+$/.test(first || "")) {
      if (sub === "runs" && second) return path("runs", second);
      // MLflow 3's logged models: `#/experiments/4/models` and `#/experiments/4/models/m-…`.
      if (sub === "models") return second ? path("experiments", first, "models", second) : path("experiments", first, "models");
      return path("experiments", first);
    }
    if (section === "experiments" && !first) return "/";
    if (section === "models" && first && sub === "versions" && /^\d+$/.test(second || "")) {
      return path("models", first, "versions", second);
    }
    if (section === "models") return first ? path("models", first) : "/models/";
    if (section === "compare-runs") {
      // `?runs=["a","b"]`: a JSON list of run ids.
      try {
        const runs = JSON.parse(new URLSearchParams(fragmentQuery || "").get("runs") || "[]");
        if (Array.isArray(runs) && runs.length) return "/compare/?runs=" + runs.map(encodeURIComponent).join(",");
      } catch (error) {
        return null;
      }
    }
    return null;
  }

  const destination = target();
  if (destination) location.replace(destination);
})();
