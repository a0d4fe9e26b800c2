"""The compare page: selected runs (or a parent's children) side by side, as a table, as CSV,
and as Plotly charts. Reads come from tracker/selectors/compare.py; figures from dashboard/charts.py."""

import csv
import re
from urllib.parse import urlencode

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from dashboard import charts
from dashboard.diff_table import CompareState, compare_table, csv_rows
from dashboard.static_finders import PLOTLY_JS
from tracker.errors import ResourceDoesNotExist, TrackingError
from tracker.selectors import compare


@require_GET
def compare_runs(request):
    state = CompareState.from_query(request.GET)
    try:
        selection = compare.select_runs(run_ids=list(state.run_ids), parent_run_id=state.parent)
    except TrackingError as problem:
        return _problem_page(request, state, problem)
    comparison = compare.compare_runs(selection.runs, requested_ids=selection.requested_ids)
    if not comparison.runs and selection.parent is None:
        return _problem_page(request, state, ResourceDoesNotExist("None of the selected runs exists."))
    state = state.resolved(comparison)
    if state.csv:
        return _csv_response(comparison, state, selection)
    table = compare_table(
        comparison, diff_only=state.diff_only, show_parents=selection.parent is None, page=state.table_page
    )
    context = {
        "state": state,
        "comparison": comparison,
        "parent": selection.parent,
        "table": table,
        "table_pages": _table_page_links(request, table),
        "figures": _figures(comparison, state),
        "history_url": reverse("dashboard:compare-history") + "?" + urlencode(state.history_query),
        "plotly_js": PLOTLY_JS,
    }
    return render(request, "dashboard/compare.html", context)


@require_GET
def compare_history(request):
    """The metric-history figure as JSON, which the page fetches once it is shown: the one
    chart whose data grows with the length of the runs' histories, so the table and the other
    charts never wait for it (bench/compare_page.py)."""
    state = CompareState.from_query(request.GET)
    try:
        selection = compare.select_runs(run_ids=list(state.run_ids), parent_run_id=state.parent)
    except TrackingError as problem:
        return JsonResponse({"error": problem.message}, status=problem.http_status)
    if not state.history:
        return JsonResponse({"error": "Name the metric to draw: ?history=<metric key>."}, status=400)
    runs = compare.selected_runs(selection.runs)
    histories = compare.sampled_histories(selection.runs, state.history, per_run=compare.points_per_run(len(runs)))
    return JsonResponse(charts.history_lines_figure(runs, histories, state.history))


def _table_page_links(request, table) -> dict[str, str]:
    """The previous and next pages of the table: this page's URL with another table_page."""
    links = {}
    for name, page in (("previous", table.page - 1), ("next", table.page + 1)):
        if 1 <= page <= table.pages:
            query = request.GET.copy()
            query["table_page"] = str(page)
            links[name] = "?" + query.urlencode()
    return links


def _figures(comparison, state) -> list[dict]:
    """The charts drawn from the runs' latest values, each as {id, figure, wide}: parallel
    coordinates takes a whole row, scatter and bars share one (the history comes by fetch)."""
    runs, metric, goal = comparison.runs, state.metric, comparison.goal(state.metric)
    figures = []
    if metric and comparison.param_keys:
        figures.append((charts.parallel_coordinates_figure(runs, comparison.param_keys, metric, goal=goal), True))
    if metric and state.x:
        figures.append((charts.scatter_figure(runs, state.x, metric), False))
    if metric:
        figures.append((charts.metric_bars_figure(runs, metric, goal=goal), False))
    return [{"id": f"compare-figure-{i}", "figure": f, "wide": wide} for i, (f, wide) in enumerate(figures)]


def _problem_page(request, state, problem: TrackingError):
    context = {"state": state, "problem": problem.message}
    return render(request, "dashboard/compare.html", context, status=problem.http_status)


def _csv_response(comparison, state, selection) -> HttpResponse:
    what = f"children-{selection.parent.run_id}" if selection.parent else f"{len(comparison.runs)}-runs"
    filename = re.sub(r"[^A-Za-z0-9_.-]", "_", f"runtree-compare-{what}.csv")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    csv.writer(response).writerows(csv_rows(comparison, diff_only=state.diff_only))
    return response
