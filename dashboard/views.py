"""The pages: each view parses the request, calls one read in tracker/selectors/, and renders."""

import dataclasses
from pathlib import Path

import plotly
from django.core.exceptions import BadRequest
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from dashboard.charts import history_figures
from dashboard.filtering import compile_filter, order_for
from dashboard.state import TreeState, parse_int
from tracker import services
from tracker.errors import InvalidParameterValue
from tracker.goals import goal_tag, goals_from_tags
from tracker.models import Experiment, Goal, Run
from tracker.selectors import artifacts as artifact_selectors
from tracker.selectors import experiments as experiment_reads
from tracker.selectors import run_page, tree
from tracker.selectors.run_inputs import run_inputs

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@require_GET
def experiment_list(request):
    search = request.GET.get("q", "").strip()
    show_deleted = request.GET.get("show_deleted") == "1"
    experiments = list(experiment_reads.experiments_overview(search=search, show_deleted=show_deleted))
    has_runs = any(experiment.run_count for experiment in experiments)
    context = {"experiments": experiments, "search": search, "show_deleted": show_deleted, "has_runs": has_runs}
    return render(request, "dashboard/experiment_list.html", context)


@require_GET
def experiment_tree(request, experiment_id: int):
    experiment = get_object_or_404(Experiment.objects.prefetch_related("tags"), pk=experiment_id)
    state = TreeState.from_query(request.GET)
    summary_keys = tree.summary_keys(experiment)
    # The best-child column shows the chosen metric, else the first one with summaries.
    state = dataclasses.replace(state, best=state.best or next(iter(summary_keys), ""))
    match_q, problem = compile_filter(state.filter)
    page = None
    if problem is None:
        page = tree.tree_page(
            experiment,
            order=order_for(state.sort_key, state.descending),
            match_q=match_q,
            page=state.page,
            per_page=state.per_page,
            expanded=frozenset(state.expanded),
            collapsed=frozenset(state.collapsed),
            show_deleted=state.show_deleted,
            columns=state.columns,
            summary_key=state.best,
        )
    context = {
        "experiment": experiment,
        "state": state,
        "tree": page,
        "problem": problem,
        "selected": set(state.selected),
        "tag_chips": tree.common_tags(experiment),
        "column_choices": tree.column_choices(experiment),
        "summary_keys": summary_keys,
        "goals": goal_switches(experiment, summary_keys),
    }
    # A filter that does not parse is the viewer's mistake: the page, with the message, as a 400.
    return render(request, "dashboard/experiment_tree.html", context, status=400 if problem else 200)


def goal_switches(experiment: Experiment, keys: list[str]) -> list[tuple[str, str]]:
    """(metric, "min"/"max") for each metric's goal switch, read off the prefetched tags (no query)."""
    return goals_from_tags(experiment.tag_dict(), keys)


@require_GET
def run_children(request, run_id: str):
    """The rows of one parent's children, fetched when a viewer expands it or asks for more."""
    state = TreeState.from_query(request.GET)
    parent = get_object_or_404(Run.objects.with_child_count(include_deleted=state.show_deleted), run_id=run_id)
    match_q, problem = compile_filter(state.filter)
    rows = tree.children_page(
        parent,
        order=order_for(state.sort_key, state.descending),
        offset=parse_int(request.GET.get("offset"), 0, 0, 10**9),
        limit=state.per_page,
        match_q=match_q,
        matches_only=request.GET.get("matches") == "1",
        show_deleted=state.show_deleted,
        columns=state.columns,
        level=parse_int(request.GET.get("level"), 0, 0, 1000),
        summary_key=state.best,
    )
    context = {"rows": rows, "state": state, "selected": set(state.selected)}
    return render(request, "partials/tree_rows.html", context, status=400 if problem else 200)


@require_GET
def run_detail(request, run_id: str):
    try:
        overview = run_page.run_overview(
            run_id, children_page=request.GET.get("page", "1"), order=order_for("start", descending=True)
        )
    except Run.DoesNotExist:
        raise Http404(f"No run with id {run_id}") from None
    run = overview.run
    context = {
        "overview": overview,
        "run": run,
        "figures": [{"id": f"figure-{i}", "figure": f} for i, f in enumerate(history_figures(overview.history))],
        "plotly_version": plotly.__version__,
        "user_tags": [tag for tag in overview.tags if not tag.key.startswith(tree.SYSTEM_TAG_PREFIXES)],
        "system_tags": [tag for tag in overview.tags if tag.key.startswith(tree.SYSTEM_TAG_PREFIXES)],
        # The experiment tree under this filter shows the run inside its tree, ancestors open.
        "tree_filter": f"attributes.run_id = '{run.run_id}'",
        # The Datasets and Models sections (their own partials).
        "inputs": run_inputs(run),
        "artifacts": artifact_selectors.run_artifact_folder(run=run),
    }
    return render(request, "dashboard/run_detail.html", context)


@require_POST
def experiment_goal(request, experiment_id: int):
    """Switch a metric's goal (min or max): the experiment tag its summaries are ranked by. The
    write service marks them stale and queues the refresh; back to the page the switch was on."""
    experiment = get_object_or_404(Experiment, pk=experiment_id)
    metric, goal = request.POST.get("metric", "").strip(), request.POST.get("goal", "")
    if not metric or goal not in Goal.values:
        raise BadRequest("A goal switch needs a metric and a goal of 'min' or 'max'.")
    try:
        services.experiment_set_tag(experiment=experiment, key=goal_tag(metric), value=goal)
    except InvalidParameterValue as error:  # a malformed key, a deleted experiment
        raise BadRequest(str(error)) from None
    # Only back to a page of this site: `next` comes from the form, so anyone can write it.
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
        next_url = reverse("dashboard:experiment", args=[experiment.pk])
    return redirect(next_url)


def plotly_js(request, version: str):
    """plotly.js from the installed plotly package (never a copy in the repo). The version is in
    the URL, so the file can be cached for a year."""
    if version != plotly.__version__:
        raise Http404("Unknown plotly version")
    response = FileResponse(PLOTLY_JS.open("rb"), content_type="text/javascript")
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
