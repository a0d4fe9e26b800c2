"""The compare page: selected runs (or a parent's children) side by side, as a table, as CSV,
and as Plotly charts. Reads come from tracker/selectors/; figures from dashboard/charts.py."""

import csv
import re
from urllib.parse import urlencode

from csp.decorators import csp_update
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from dashboard import charts
from dashboard.band_charts import sweep_band_figure
from dashboard.diff_table import MAX_SWEEPS, CompareState, compare_table, csv_rows
from dashboard.downsample import keep_extremes
from dashboard.importance_charts import importance_chart
from dashboard.static_finders import PLOTLY_JS
from dashboard.views import with_live_headers
from tracker.errors import ResourceDoesNotExist, TrackingError
from tracker.selectors import compare, histories, tree
from tracker.selectors.bands import parents_among, sweep_children, sweep_parents
from tracker.selectors.logged_images import COMPARE_RUNS_SHOWN, compared_images
from tracker.summaries.importance import importance_for
from tracker.values import finite_or_none
from tracker.web.json_errors import json_response


# The parallel-coordinates chart draws with WebGL through regl, which compiles its shader
# bindings with `new Function`: this page's scripts may eval. They still come only from this
# origin and never inline, and no other page allows it (tests/trust/test_csp.py).
@csp_update({"script-src": ["'unsafe-eval'"]})
@require_GET
def compare_runs(request):
    state = CompareState.from_query(request.GET)
    try:
        selection = _selection(state)
    except TrackingError as problem:
        return _problem_page(request, state, problem)
    comparison = compare.compare_runs(selection.runs, requested_ids=selection.requested_ids, histories=not state.csv)
    if not comparison.runs and selection.parent is None:
        return _problem_page(request, state, ResourceDoesNotExist("None of the selected runs exists."))
    state = state.resolved(comparison)
    if state.csv:
        return _csv_response(comparison, state, selection)
    sweeps = sweep_parents(state.parents) if state.parents else []
    colors = charts.run_colors([run.run_id for run in comparison.runs])
    table = compare_table(
        comparison,
        diff_only=state.diff_only,
        show_parents=selection.parent is None,
        page=state.table_page,
        colors=colors,
    )
    context = {
        "state": state,
        "comparison": comparison,
        "parent": selection.parent,
        "table": table,
        "table_pages": _table_page_links(request, table),
        "figures": _figures(comparison, state, sweeps=sweeps, colors=colors),
        "sweeps": sweeps,
        "importance": _importance(selection.parent, comparison, state.metric),
        "sweeps_url": _sweeps_url(selection, state),
        "band_modes": charts.BAND_MODES,
        "history_url": reverse("dashboard:compare-history") + "?" + urlencode(state.history_query),
        "plotly_js": PLOTLY_JS,
        "images": _images(request, table, colors),
    }
    if selection.parent is not None:
        # A sweep's children, live while it runs: the run page's poll of the parent changes with
        # its children (count, status) and with its summaries, which their metrics refresh.
        context["live"] = tree.run_live_version(selection.parent.run_id)
        context["live_url"] = reverse("dashboard:run-live", args=[selection.parent.run_id])
    elif sweeps:
        # Sweeps side by side, live while any of them runs: their parents watched together.
        parent_ids = [parent.run_id for parent in sweeps]
        context["live"] = tree.runs_live_version(parent_ids)
        context["live_url"] = reverse("dashboard:compare-live") + "?" + urlencode({"parents": ",".join(parent_ids)})
    return render(request, "dashboard/compare.html", context)


@require_GET
def compare_live(request):
    """Compare sweeps' poll, as the run page's (views.run_live) for all the sweeps' parents at
    once: 204 when none changed since version `since`, else 200 and the new version."""
    state = CompareState.from_query(request.GET)
    version = tree.runs_live_version(state.parents)
    if version is None:
        return JsonResponse({"error": "Name the sweeps' parents: ?parents=<run id>,<run id>."}, status=404)
    status = 204 if request.GET.get("since") == version.token else 200
    return with_live_headers(HttpResponse(status=status), version)


def _images(request, table, colors: dict[str, str]) -> dict | None:
    """Images logged by key, side by side: each of the table page's first runs that logged
    some, at its last step of the chosen key (`?images=<key>`), with a link to each other key."""
    found = compared_images([row.run.pk for row in table.rows], key=request.GET.get("images", ""))
    if found is None:
        return None
    labels = {row.run.run_id: row.run.label for row in table.rows}
    links = {}
    for key in found.keys:
        query = request.GET.copy()
        query["images"] = key
        links[key] = "?" + query.urlencode()
    return {
        "found": found,
        "key_links": links,
        "runs": [(labels[run.run_id], colors.get(run.run_id, ""), run) for run in found.runs],
        "limit": COMPARE_RUNS_SHOWN,
    }


@require_GET
def compare_history(request):
    """The metric-history figure as JSON, which the page fetches once it is shown: the one
    chart whose data grows with the length of the runs' histories, so the table and the other
    charts never wait for it (bench/compare_page.py). With `from` and `to` (a zoom, read by
    charts.ZoomRange as on the run page), the range only, at full resolution up to each
    run's budget of points."""
    state = CompareState.from_query(request.GET)
    try:
        selection = _selection(state)
    except TrackingError as problem:
        return JsonResponse({"error": problem.message}, status=problem.http_status)
    if not state.history:
        return JsonResponse({"error": "Name the metric to draw: ?history=<metric key>."}, status=400)
    # orjson: 10,000 runs' history is ~8 MB of JSON, which json.dumps took ~0.4 s to write.
    return json_response(_history_figure(selection, state, request.GET))


def _history_figure(selection, state: CompareState, query) -> dict:
    """The history of `state.history` for the selection, each run thinned to its share of the
    chart's points, in the zoomed range when the query names one (queries: the runs, the
    points' count and the points, and the origins of runs without a start time in relative time)."""
    runs = compare.selected_runs(selection.runs)
    per_run = compare.points_per_run(len(runs))
    options = charts.HistoryOptions.from_query(query)
    zoom = charts.ZoomRange.from_query(query, options)
    found = histories.selection_histories(
        selection.runs, state.history, per_run=per_run, low=zoom.low, high=zoom.high, by=zoom.by
    )
    thinned = {pk: keep_extremes(series, per_run, smoothing=options.smoothing) for pk, series in found.items()}
    origins = histories.time_origins({run.pk: run.start_time for run in runs}) if options.x == "relative" else {}
    lines = {pk: charts.compare_line(line, options, origins.get(pk, 0)) for pk, line in thinned.items()}
    colors = charts.run_colors([run.run_id for run in runs])  # the page's: the same runs in the same order
    figure = charts.history_lines_figure(
        runs,
        {pk: raw for pk, (raw, _) in lines.items()},
        state.history,
        colors=colors,
        log_y=state.log_y,
        smoothed={pk: smooth for pk, (_, smooth) in lines.items()} if options.smoothing else None,
        x_title=charts.X_MODES[options.x],
    )
    charts.add_points_note(figure, thinned.values())
    return figure


def _table_page_links(request, table) -> dict[str, str]:
    """The previous and next pages of the table: this page's URL with another table_page."""
    links = {}
    for name, page in (("previous", table.page - 1), ("next", table.page + 1)):
        if 1 <= page <= table.pages:
            query = request.GET.copy()
            query["table_page"] = str(page)
            links[name] = "?" + query.urlencode()
    return links


def _importance(parent, comparison, metric: str):
    """Compare children: the stored importance of the params for the chosen metric (1 query)."""
    if parent is None or not metric:
        return None
    children = sum(1 for run in comparison.runs if finite_or_none(run.metrics.get(metric)) is not None)
    stored = importance_for(parent, [metric]).get(metric)
    return importance_chart(metric, stored, children=children, chart_id="compare-importance")


def _sweeps_url(selection, state) -> str:
    """For runs picked in the tree of which two or more are parents: their children compared as
    sweeps (one query)."""
    if not state.run_ids:
        return ""
    parents = parents_among(selection.runs, limit=MAX_SWEEPS)
    if len(parents) < 2:
        return ""
    query = {"parents": ",".join(parents), **({"history": state.history} if state.history else {})}
    return reverse("dashboard:compare") + "?" + urlencode(query)


def _selection(state: CompareState) -> compare.Selection:
    """The runs to compare: the children of the sweeps' parents, else what select_runs reads."""
    if state.parents:
        return compare.Selection(runs=sweep_children(state.parents))
    return compare.select_runs(run_ids=list(state.run_ids), parent_run_id=state.parent)


def _figures(comparison, state, *, sweeps=(), colors=None) -> list[dict]:
    """The charts drawn from the runs' latest values, each as {id, figure, wide}: parallel
    coordinates takes a whole row, scatter and bars share one (the history comes by fetch)."""
    runs, metric, goal = comparison.runs, state.metric, comparison.goal(state.metric)
    figures = []
    if sweeps and state.history:
        band = sweep_band_figure(sweeps, state.history, mode=state.band)
        if band:
            figures.append((band, True))
    if metric and comparison.param_keys:
        figures.append((charts.parallel_coordinates_figure(runs, comparison.param_keys, metric, goal=goal), True))
    if metric and state.x:
        scatter = charts.scatter_figure(runs, state.x, metric, colors=colors, log_x=state.log_x, log_y=state.log_y)
        figures.append((scatter, True))
    if metric:
        figures.append((charts.metric_bars_figure(runs, metric, goal=goal, colors=colors, log_y=state.log_y), True))
    return [{"id": f"compare-figure-{i}", "figure": f, "wide": wide} for i, (f, wide) in enumerate(figures)]


def _problem_page(request, state, problem: TrackingError):
    # The template links plotly.js whenever the URL asks for a history chart, problem or not.
    context = {"state": state, "problem": problem.message, "plotly_js": PLOTLY_JS}
    return render(request, "dashboard/compare.html", context, status=problem.http_status)


def _csv_response(comparison, state, selection) -> HttpResponse:
    what = f"children-{selection.parent.run_id}" if selection.parent else f"{len(comparison.runs)}-runs"
    filename = re.sub(r"[^A-Za-z0-9_.-]", "_", f"runtree-compare-{what}.csv")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    csv.writer(response).writerows(csv_rows(comparison, diff_only=state.diff_only))
    return response
