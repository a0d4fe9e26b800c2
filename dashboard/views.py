"""The pages: each view parses the request, calls one read in tracker/selectors/, and renders."""

import dataclasses
import hashlib

from django.core.cache import cache
from django.core.exceptions import BadRequest
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from dashboard.band_charts import parent_band_charts
from dashboard.filtering import compile_filter, named_columns, order_for
from dashboard.importance_charts import importance_chart
from dashboard.permissions import can_write
from dashboard.run_charts import run_charts, zoomed_figure
from dashboard.state import TreeState, parse_columns, parse_int
from dashboard.static_finders import PLOTLY_JS
from dashboard.templatetags.runtree import cut_middle_together
from dashboard.templatetags.tree import render_rows
from tracker import services
from tracker.constants import LOGGED_IMAGES_TAG, NOTE_TAG
from tracker.errors import InvalidParameterValue, ResourceDoesNotExist
from tracker.goals import GoalChoice, goal_choices_from_tags, goal_from_tag, goal_tag
from tracker.models import Experiment, Goal, Run
from tracker.selectors import artifacts as artifact_selectors
from tracker.selectors import experiments as experiment_reads
from tracker.selectors import run_page, tree
from tracker.selectors.histories import latest_per_dataset
from tracker.selectors.logged_images import logged_images
from tracker.selectors.logged_models import with_model_count
from tracker.selectors.run_inputs import run_inputs
from tracker.series import series_key
from tracker.summaries.importance import importance_for


@require_GET
def experiment_list(request):
    search = request.GET.get("q", "").strip()
    show_deleted = request.GET.get("show_deleted") == "1"
    experiments = list(experiment_reads.experiments_overview(search=search, show_deleted=show_deleted))
    has_runs = any(experiment.run_count for experiment in experiments)
    for experiment, parts in zip(experiments, cut_middle_together([e.name for e in experiments]), strict=True):
        experiment.name_parts = parts
    context = {"experiments": experiments, "search": search, "show_deleted": show_deleted, "has_runs": has_runs}
    return render(request, "dashboard/experiment_list.html", context)


@require_GET
def experiment_tree(request, experiment_id: int):
    experiment = get_object_or_404(with_model_count(Experiment.objects.prefetch_related("tags")), pk=experiment_id)
    catalog = tree.column_catalog(experiment)
    summary_keys = tree.summary_keys(experiment)
    state = shown_state(TreeState.from_query(request.GET), catalog, summary_keys)
    page, problem = tree_page_for(experiment, state)
    live = tree.live_version(experiment.pk)
    context = {
        "experiment": experiment,
        "state": state,
        "tree": page,
        "problem": problem,
        "selected": set(state.selected),
        "tag_chips": tree.common_tags(experiment),
        # The catalog reads the latest runs only (a million-run experiment's keys cost seconds):
        # a column in use is offered too, or "Show columns" would drop it unasked.
        "column_choices": sorted({*catalog.choices, *state.columns}),
        "summary_keys": summary_keys,
        "goals": goal_switches(experiment, summary_keys),
        "column_goals": column_goals(experiment, state),
        "live": live,
        # Asked only when the experiment has deleted runs (the live version counts them).
        "hidden_under_deleted": tree.runs_under_deleted_parents(experiment.pk)
        if live.deleted and not state.show_deleted
        else 0,
        "can_write": can_write(request),
    }
    # A filter that does not parse is the viewer's mistake: the page, with the message, as a 400.
    return render(request, "dashboard/experiment_tree.html", context, status=400 if problem else 200)


def tree_page_for(experiment: Experiment, state: TreeState):
    """(the tree page of `state`, None) or (None, the filter's problem)."""
    match_q, problem = compile_filter(state.filter)
    if problem is not None:
        return None, problem
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
    return page, None


# Open pages showing one view of one experiment share its rows for this long: during a sweep
# every poll finds a change, and 50 pages rendering the same rows every 2 s cost the server
# ~0.25 cores (bench/live_polling.py) for rows at most this much staler.
LIVE_ROWS_SHARED_FOR = 1.0  # seconds


@require_GET
def experiment_live(request, experiment_id: int):
    """A live tree page's poll: 204 and nothing else when the experiment has not changed since
    the page's version (`since`), at the cost of one query; else the rows of the view the page
    shows (it sends its state, columns and best-child metric included) and its count of runs,
    which static/js/live.js merges into the table and the toolbar. Either way the version and
    the number of running runs travel in headers, so the page knows whether to keep polling."""
    since = request.GET.get("since", "")
    version = tree.live_version(experiment_id)
    if since == version.token:
        return with_live_headers(HttpResponse(status=204), version)
    view = request.GET.copy()
    view.pop("since", None)
    key = f"runtree:live:{experiment_id}:{request.user.pk}:{hashlib.sha256(view.urlencode().encode()).hexdigest()}"
    shared = cache.get(key)
    if shared is not None:
        version, body = shared
        status = 204 if since == version.token else 200
        return with_live_headers(HttpResponse(body if status == 200 else b"", status=status), version)
    experiment = get_object_or_404(Experiment, pk=experiment_id)
    state = TreeState.from_query(request.GET)
    page, problem = tree_page_for(experiment, state)
    # The rows, then the toolbar's count of them (a run that started or stopped matching moves it).
    summary = render_to_string("partials/tree_summary.html", {"tree": page})
    body = rows_html(page.rows if page else [], state) + f"<div data-live-summary>{summary}</div>"
    if request.GET.get("columns_default") == "1":
        body += render_to_string("partials/tree_columns_notice.html", {"new": _new_default_columns(experiment, state)})
    response = HttpResponse(body)
    cache.set(key, (version, response.content), LIVE_ROWS_SHARED_FOR)
    return with_live_headers(response, version)


# A page on the default columns learns of new ones (a param a sweep has started to vary) at most
# this much later: the catalog is a query over the latest runs, not for every poll of every page.
DEFAULT_COLUMNS_SHARED_FOR = 10  # seconds


def _new_default_columns(experiment: Experiment, state: TreeState) -> list:
    """The default columns the page (on the defaults, showing `state.columns`) does not show yet."""
    defaults = cache.get_or_set(
        f"runtree:default-columns:{experiment.pk}:{experiment.creation_time}",
        lambda: tree.column_catalog(experiment).defaults,
        DEFAULT_COLUMNS_SHARED_FOR,
    )
    return [column for column in default_columns(state, defaults) if column not in state.columns]


@require_GET
def run_live(request, run_id: str):
    """The run page's poll: 204 when the run, its metrics, children and summary are as they were
    at version `since` (one query); else 200 and the new version, and static/js/run_live.js
    fetches the page again and swaps the parts that show them."""
    version = tree.run_live_version(run_id)
    if version is None:
        raise Http404(f"No run with id {run_id}")
    status = 204 if request.GET.get("since") == version.token else 200
    return with_live_headers(HttpResponse(status=status), version)


def with_live_headers(response: HttpResponse, version: tree.LiveVersion) -> HttpResponse:
    response["X-Runtree-Version"] = version.token
    response["X-Runtree-Running"] = str(version.running)
    response["Cache-Control"] = "no-store"
    return response


def shown_state(state: TreeState, catalog: tree.ColumnCatalog, summary_keys: list[str]) -> TreeState:
    """The view the page shows: with no columns in the URL, the experiment's default columns and
    any key the filter or the sort names; the best-child column on the chosen metric, else the
    primary (most-logged) one, else the first with summaries."""
    columns = state.columns if state.columns_chosen else default_columns(state, catalog.defaults)
    best = state.best
    if not best:
        best = catalog.primary_metric if catalog.primary_metric in summary_keys else next(iter(summary_keys), "")
    return dataclasses.replace(state, columns=columns, best=best)


def default_columns(state: TreeState, catalog_defaults) -> tuple:
    """The columns a view without chosen ones shows: the experiment's defaults, then any key its
    filter or sort names."""
    named = [*named_columns(state.filter), *parse_columns([state.sort_key])]
    return tuple(dict.fromkeys([*catalog_defaults, *named]))


def column_goals(experiment: Experiment, state: TreeState) -> dict[str, str]:
    """The goal of each metric column and of the best-child column, by column name, so a first
    click sorts best first (no query: the experiment's tags are prefetched)."""
    tags = experiment.tag_dict()
    keys = {column.name: column.key for column in state.columns if column.kind == "metrics"}
    if state.best:
        keys[state.best_column] = series_key(state.best)  # a goal is a key's, for each of its datasets
    return {name: goal_from_tag(key, tags.get(goal_tag(key))) for name, key in keys.items()}


def goal_switches(experiment: Experiment, summary_keys: list[str]) -> list[GoalChoice]:
    """A goal switch for each key summarised (once for a key summarised per dataset): its goal and
    whether it was set or inferred from the name, read off the prefetched tags (no query)."""
    keys = list(dict.fromkeys(series_key(name) for name in summary_keys))
    return goal_choices_from_tags(experiment.tag_dict(), keys)


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
    return HttpResponse(rows_html(rows, state), status=400 if problem else 200)


def rows_html(rows, state: TreeState):
    """Rows alone, for a page to put in its table: its view's selection and best-child column."""
    return render_rows(rows, selected=set(state.selected), best=state.best, colspan=state.colspan)


@require_GET
def run_detail(request, run_id: str):
    try:
        overview = run_page.run_overview(
            run_id, children_page=request.GET.get("page", "1"), order=order_for("start", descending=True)
        )
    except Run.DoesNotExist:
        raise Http404(f"No run with id {run_id}") from None
    run = overview.run
    charts = run_charts(run, request.GET, keep=_kept(request.GET, HISTORY_PARAMS))
    on_datasets = latest_per_dataset(run, charts.split_keys)
    context = {
        "overview": overview,
        "run": run,
        "charts": charts,
        # A key logged on several datasets reads a row per dataset, not its last value on any.
        "metric_rows": [(metric, on_datasets.get(metric.key)) for metric in overview.metrics],
        "bands": _bands(run, request.GET, overview.summaries),
        "importance": _importance(run, overview.summaries),
        "plotly_js": PLOTLY_JS,
        "user_tags": [tag for tag in overview.tags if not tag.key.startswith(tree.SYSTEM_TAG_PREFIXES)],
        "system_tags": [tag for tag in overview.tags if tag.key.startswith(tree.SYSTEM_TAG_PREFIXES)],
        "live": tree.run_live_version(run.run_id),
        "can_write": can_write(request),
        "note": next((tag.value for tag in overview.tags if tag.key == NOTE_TAG), ""),
        "live_url": reverse("dashboard:run-live", args=[run.run_id]),
        # The experiment tree under this filter shows the run inside its tree, ancestors open.
        "tree_filter": f"attributes.run_id = '{run.run_id}'",
        # The Datasets and Models sections (their own partials).
        "inputs": run_inputs(run),
        "artifacts": artifact_selectors.artifact_folder(artifact_selectors.run_artifacts(run)),
        # Read only for a run whose client said it logged some: one listing of its images/ folder.
        "logged_images": logged_images(run) if any(tag.key == LOGGED_IMAGES_TAG for tag in overview.tags) else None,
    }
    return render(request, "dashboard/run_detail.html", context)


# The run page's chart choices: each form keeps the others' in hidden fields.
HISTORY_PARAMS = ("xaxis", "smooth", "logx", "logy")
BAND_PARAMS = ("band", "lines")


def _kept(query, own: tuple[str, ...]) -> dict[str, str]:
    """The page's query minus the form's `own` choices, for that form's hidden fields."""
    return {name: query[name] for name in ("page", *HISTORY_PARAMS, *BAND_PARAMS) if name in query and name not in own}


def _bands(run, query, summaries):
    """A parent's band charts; a run without children has none (and costs no query). Its
    summaries' newest computed_at versions them (dashboard/band_charts.py)."""
    if not run.child_count:
        return None
    version = max((summary.computed_at for summary in summaries), default=None)
    return parent_band_charts(run, query, keep=_kept(query, BAND_PARAMS), version=version)


def _importance(run, summaries) -> list:
    """A parent's param importance per summarised metric, or why there is none (1 query)."""
    if not run.child_count or not summaries:
        return []
    stored = importance_for(run)
    return [
        importance_chart(summary.key, stored.get(summary.key), children=summary.count, chart_id=f"importance-{number}")
        for number, summary in enumerate(summaries[:MAX_IMPORTANCE_CHARTS])
    ]


# A parent's page ranks the params of this many metrics at most (its summary lists them all).
MAX_IMPORTANCE_CHARTS = 6


@require_GET
def run_history(request, run_id: str):
    """One run-page chart as a figure dict, for a zoomed range at full resolution."""
    run = get_object_or_404(Run.objects.only("pk", "run_id", "start_time"), run_id=run_id)
    return JsonResponse(zoomed_figure(run, request.GET))


# The goal switch's third choice: no goal set for the experiment, the name decides.
GOAL_FROM_NAME = "from-name"


@require_POST
def experiment_goal(request, experiment_id: int):
    """Switch a metric's goal (min or max): the experiment tag its summaries are ranked by; or
    reset it (GOAL_FROM_NAME), so the goal is read off the metric's name again. The write
    service marks the summaries stale and queues the refresh; back to the page the switch was on."""
    experiment = get_object_or_404(Experiment, pk=experiment_id)
    metric, goal = request.POST.get("metric", "").strip(), request.POST.get("goal", "")
    if not metric or goal not in (*Goal.values, GOAL_FROM_NAME):
        raise BadRequest("A goal switch needs a metric and a goal of 'min', 'max' or 'from-name'.")
    try:
        if goal == GOAL_FROM_NAME:
            services.experiment_delete_tag(experiment=experiment, key=goal_tag(metric))
        else:
            services.experiment_set_tag(experiment=experiment, key=goal_tag(metric), value=goal)
    except ResourceDoesNotExist:
        pass  # reset already (a second click, another tab): nothing to undo
    except InvalidParameterValue as error:  # a malformed key, a deleted experiment
        raise BadRequest(str(error)) from None
    # Only back to a page of this site: `next` comes from the form, so anyone can write it.
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
        next_url = reverse("dashboard:experiment", args=[experiment.pk])
    return redirect(next_url)
