"""Hierarchy reads for the run-tree pages: a page of roots with the nodes the viewer opened,
matching runs shown inside their trees, one parent's children a page at a time.

Every read here costs a fixed number of queries whatever the size of the experiment: children
of many parents come from one windowed query, ancestors of many runs from one `pk IN (...)`
read off the materialized paths, and column values from one query per kind.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.core.paginator import Paginator
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    ExpressionWrapper,
    F,
    Max,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
    Window,
)
from django.db.models.functions import Cast, Coalesce, Greatest, RowNumber, Substr

from tracker.models import (
    ACTIVE,
    PATH_SEGMENT_WIDTH,
    Experiment,
    LatestMetric,
    Metric,
    Param,
    Run,
    RunTag,
    path_ids,
)

# The pk of a run's root: the first segment of its materialized path.
ROOT_PK = Cast(Substr("path", 1, PATH_SEGMENT_WIDTH), BigIntegerField())

# Under a filter, at most this many matches are placed in one tree on a page (the rest are a
# "show more" away), so a filter matching 10,000 siblings still renders a page quickly.
MATCHES_PER_TREE = 500

# The tag chips and the column picker read keys off the latest runs only: a sweep's runs share
# their keys, and a GROUP BY over every tag of a 100,000-run experiment would cost more than
# the rest of the page.
KEY_SAMPLE_RUNS = 2000

# Tags that clients and Runtree write for their own bookkeeping; never offered as chips.
SYSTEM_TAG_PREFIXES = ("mlflow.", "runtree.")

ATTRIBUTE_SORTS = {
    "name": F("name"),
    "status": F("status"),
    "start": F("start_time"),
    "end": F("end_time"),
    "duration": ExpressionWrapper(F("end_time") - F("start_time"), output_field=BigIntegerField()),
}


@dataclass(frozen=True, order=True)
class Column:
    """A param or metric column the viewer picked: `params.lr`, `metrics.loss`."""

    kind: str  # "params" or "metrics"
    key: str

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.key}"


@dataclass
class MoreRow:
    """A "show more" row closing a partly shown list of children."""

    parent: Run
    shown: int
    total: int
    matches_only: bool  # the list holds the parent's matching children, not all of them
    level: int
    hidden: bool = False
    is_more: bool = True

    @property
    def remaining(self) -> int:
        return self.total - self.shown


@dataclass
class TreePage:
    page: object  # django.core.paginator.Page of the roots
    rows: list = field(default_factory=list)  # Runs and MoreRows in display order
    match_count: int | None = None  # None when no filter is applied


def visible_runs(experiment: Experiment | int, *, show_deleted: bool = False):
    """The runs of an experiment a viewer sees: deleted ones only when asked for."""
    runs = Run.objects.in_experiment(experiment)
    return runs if show_deleted else runs.active()


def sibling_order(sort_key: str, descending: bool, value_order=None) -> list:
    """ORDER BY expressions for siblings, always ending in run_id so pages are stable.

    `sort_key` is an attribute name (ATTRIBUTE_SORTS) or a column name; column orderings come
    from `value_order(["metrics.x DESC"])` (the filter language's) or a plain subquery."""
    if sort_key in ATTRIBUTE_SORTS:
        expression = ATTRIBUTE_SORTS[sort_key]
        primary = [expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)]
    elif value_order is not None:
        # The filter language's orderings end in their own stable tie-breaks.
        return list(value_order([f"{sort_key} {'DESC' if descending else 'ASC'}"]))
    else:
        kind, _, key = sort_key.partition(".")
        expression = _value_subquery(Column(kind, key))
        primary = [expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)]
    return [*primary, F("run_id").asc()]


def _value_subquery(column: Column) -> Subquery:
    model = Param if column.kind == "params" else LatestMetric
    values = model.objects.filter(run=OuterRef("pk"), key=column.key).values("value")[:1]
    return Subquery(values)


def _annotated(queryset, *, match_q: Q | None, show_deleted: bool):
    """Rows as the tree shows them: with `child_count` and, under a filter, `is_match`."""
    queryset = queryset.with_child_count(include_deleted=show_deleted)
    if match_q is not None:
        queryset = queryset.annotate(is_match=Case(When(match_q, then=Value(True)), default=Value(False)))
    return queryset


def _first_children(queryset, *, order: list, limit: int) -> list[Run]:
    """The first `limit` children of every parent in `queryset`, in one windowed query."""
    ranked = queryset.annotate(sibling_rank=Window(RowNumber(), partition_by=[F("parent_id")], order_by=order)).filter(
        sibling_rank__lte=limit
    )
    return list(ranked.order_by("parent_id", "sibling_rank"))


def tree_page(
    experiment: Experiment,
    *,
    order: list,
    match_q: Q | None = None,
    page: int | str = 1,
    per_page: int = 50,
    expanded: frozenset[str] = frozenset(),
    collapsed: frozenset[str] = frozenset(),
    show_deleted: bool = False,
    columns: tuple[Column, ...] = (),
) -> TreePage:
    """A page of an experiment's run tree, flattened to rows in display order.

    Roots are paged. A run in `expanded` (run ids) shows its first `per_page` children. Under a
    filter (`match_q`), roots are those whose tree holds a match; each match on the page is
    shown inside its tree (its ancestors are fetched and opened as context), at most
    `per_page` per parent and MATCHES_PER_TREE per tree. A run in `collapsed` keeps its rows
    but hides them. Runs get `level`, `is_open`, `hidden`, `children_loaded`, `cells` (one
    per column) and, under a filter, `is_match`.

    Queries: roots count and page (2); children of expanded runs (1, if any); under a filter
    the match count, the matches on the page and their ancestors (3); params and latest
    metrics for the columns (1 per kind, if any).
    """
    runs = visible_runs(experiment, show_deleted=show_deleted)
    roots = runs.roots()
    match_count = None
    if match_q is not None:
        matches = runs.filter(match_q)
        match_count = matches.count()
        roots = roots.filter(pk__in=matches.annotate(root_pk=ROOT_PK).values("root_pk"))
    roots = _annotated(roots, match_q=match_q, show_deleted=show_deleted).order_by(*order)
    page_obj = Paginator(roots, per_page).get_page(page)
    root_rows = list(page_obj.object_list)
    if not root_rows:
        return TreePage(page=page_obj, match_count=match_count)

    # Only the trees on this page: an index prefix match per root.
    on_page = reduce(or_, (Q(path__startswith=root.path) for root in root_rows))
    children: dict[int, list[Run]] = defaultdict(list)
    open_pks: set[int] = set()
    more: dict[int, MoreRow] = {}

    if expanded:
        expanded_children = _first_children(
            _annotated(runs.filter(on_page, parent__run_id__in=expanded), match_q=match_q, show_deleted=show_deleted),
            order=order,
            limit=per_page,
        )
        for run in expanded_children:
            children[run.parent_id].append(run)
    if match_q is not None:
        _place_matches(runs, match_q, on_page, order, per_page, show_deleted, children, more)
        # A run whose children are shown because of matches is open as context.
        open_pks.update(pk for pk in children)

    rows: list = []
    by_pk = {run.pk: run for run in root_rows}
    for run_list in children.values():
        by_pk.update((run.pk, run) for run in run_list)
    expanded_pks = {run.pk for run in by_pk.values() if run.run_id in expanded}
    open_pks |= expanded_pks
    ctx = {"children": children, "open": open_pks, "expanded": expanded_pks, "more": more, "collapsed": collapsed}
    for root in root_rows:
        _flatten(root, 0, False, ctx, rows)
    attach_columns([row for row in rows if isinstance(row, Run)], columns)
    return TreePage(page=page_obj, rows=rows, match_count=match_count)


def _place_matches(runs, match_q, on_page, order, per_page, show_deleted, children, more) -> None:
    """Put this page's matches (below the roots) and their ancestors into `children`.

    Children already listed for an expanded parent stay as they are: a viewer who expanded a
    parent asked for all of its children, not only the matching ones."""
    ranked = (
        runs.filter(match_q)
        .filter(on_page, depth__gt=0)
        .annotate(
            rank_in_parent=Window(RowNumber(), partition_by=[F("parent_id")], order_by=order),
            rank_in_tree=Window(RowNumber(), partition_by=[ROOT_PK], order_by=order),
            matches_in_parent=Window(Count("pk"), partition_by=[F("parent_id")]),
        )
        .filter(rank_in_parent__lte=per_page, rank_in_tree__lte=MATCHES_PER_TREE)
        .values_list("pk", "path", "parent_id", "matches_in_parent")
    )
    placed = list(ranked)
    if not placed:
        return
    matches_in_parent = {parent_pk: total for _, _, parent_pk, total in placed}
    wanted: set[int] = set()
    for _pk, path, _parent_pk, _total in placed:
        wanted.update(path_ids(path)[1:])  # the match and its ancestors below the root
    known = {run.pk for run_list in children.values() for run in run_list}
    expanded_parents = set(children)
    # Ancestors are read whether deleted or not, so a match's chain is never broken.
    rows = _annotated(Run.objects.filter(pk__in=wanted - known), match_q=match_q, show_deleted=show_deleted)
    shown_matches: dict[int, int] = defaultdict(int)
    for run in rows.order_by(*order):
        if run.parent_id in expanded_parents:
            continue
        children[run.parent_id].append(run)
        if run.is_match:
            shown_matches[run.parent_id] += 1
    for parent_pk, total in matches_in_parent.items():
        if parent_pk not in expanded_parents and shown_matches[parent_pk] < total:
            more[parent_pk] = (shown_matches[parent_pk], total)


def _flatten(run: Run, level: int, hidden: bool, ctx: dict, rows: list) -> None:
    """Append `run` and, if it is open, its shown children (depth first) to `rows`. A collapsed
    run's children are kept, hidden, so opening it again needs no request."""
    kids = ctx["children"].get(run.pk, [])
    run.level, run.hidden, run.children_loaded = level, hidden, bool(kids)
    run.is_open = bool(kids) and run.pk in ctx["open"] and run.run_id not in ctx["collapsed"]
    rows.append(run)
    for child in kids:
        _flatten(child, level + 1, hidden or not run.is_open, ctx, rows)
    more = None
    if run.pk in ctx["expanded"] and run.child_count > len(kids):
        more = MoreRow(run, len(kids), run.child_count, matches_only=False, level=level + 1)
    elif run.pk in ctx["more"]:
        shown, total = ctx["more"][run.pk]
        more = MoreRow(run, shown, total, matches_only=True, level=level + 1)
    if more is not None:
        more.hidden = hidden or not run.is_open
        rows.append(more)


def children_page(
    parent: Run,
    *,
    order: list,
    offset: int = 0,
    limit: int = 50,
    match_q: Q | None = None,
    matches_only: bool = False,
    show_deleted: bool = False,
    columns: tuple[Column, ...] = (),
    level: int = 0,
) -> list:
    """One page of `parent`'s children (or, with `matches_only`, of its matching children),
    as rows at `level`, ending in a MoreRow when there are more.

    Queries: the count (1, only for matches_only: otherwise `parent.child_count` is used), the
    page (1), and the column values (1 per kind)."""
    queryset = Run.objects.children_of(parent)
    if not show_deleted:
        queryset = queryset.filter(lifecycle_stage=ACTIVE)
    if matches_only and match_q is not None:
        queryset = queryset.filter(match_q)
        total = queryset.count()
    else:
        total = parent.child_count
    queryset = _annotated(queryset, match_q=match_q, show_deleted=show_deleted).order_by(*order)
    rows: list = list(queryset[offset : offset + limit])
    for run in rows:
        run.level, run.is_open, run.hidden, run.children_loaded = level, False, False, False
    attach_columns(rows, columns)
    if offset + len(rows) < total:
        rows.append(MoreRow(parent, offset + len(rows), total, matches_only=matches_only, level=level))
    return rows


def attach_columns(runs: list[Run], columns: tuple[Column, ...]) -> None:
    """Set `run.cells`, a (column, value) per column (None when the run lacks the key; a
    metric's NaN is float NaN): one query per kind of column."""
    found: dict[tuple[int, str], object] = {}
    pks = [run.pk for run in runs]
    for kind, model in (("params", Param), ("metrics", LatestMetric)):
        keys = [column.key for column in columns if column.kind == kind]
        if not keys or not pks:
            continue
        for run_pk, key, value in model.objects.filter(run__in=pks, key__in=keys).values_list("run", "key", "value"):
            found[(run_pk, f"{kind}.{key}")] = math.nan if value is None else value
    for run in runs:
        run.cells = [(column, found.get((run.pk, column.name))) for column in columns]


def _recent_run_pks(experiment: Experiment):
    return Run.objects.in_experiment(experiment).order_by("-start_time").values("pk")[:KEY_SAMPLE_RUNS]


def common_tags(experiment: Experiment, *, limit: int = 12) -> list[tuple[str, str, int]]:
    """The most common (key, value, count) user tags on the experiment's latest runs (one query)."""
    tags = RunTag.objects.filter(run__in=Subquery(_recent_run_pks(experiment)))
    for prefix in SYSTEM_TAG_PREFIXES:
        tags = tags.exclude(key__startswith=prefix)
    counted = tags.values("key", "value").annotate(n=Count("pk")).order_by("-n", "key", "value")[:limit]
    return [(row["key"], row["value"], row["n"]) for row in counted]


def column_choices(experiment: Experiment) -> list[Column]:
    """Param and metric keys logged on the experiment's latest runs (one query)."""
    recent = Subquery(_recent_run_pks(experiment))
    params = Param.objects.filter(run__in=recent).annotate(kind=Value("params")).values_list("kind", "key")
    metrics = LatestMetric.objects.filter(run__in=recent).annotate(kind=Value("metrics")).values_list("kind", "key")
    return sorted(Column(kind, key) for kind, key in params.union(metrics))


def experiments_overview(*, search: str = "", show_deleted: bool = False):
    """Experiments with `run_count` and `last_activity` (epoch ms), tags prefetched.

    `last_activity` is the later of the experiment's own update and its newest run's start."""
    experiments = Experiment.objects.all() if show_deleted else Experiment.objects.active()
    if search:
        experiments = experiments.filter(name__icontains=search)
    runs = Run.objects.filter(experiment=OuterRef("pk"), lifecycle_stage=ACTIVE).order_by()
    run_count = runs.values("experiment").annotate(n=Count("pk")).values("n")
    newest = runs.values("experiment").annotate(t=Max("start_time")).values("t")
    return (
        experiments.annotate(
            run_count=Coalesce(Subquery(run_count, output_field=BigIntegerField()), 0),
            last_activity=Greatest(
                "last_update_time", Coalesce(Subquery(newest, output_field=BigIntegerField()), "last_update_time")
            ),
        )
        .prefetch_related("tags")
        .order_by("-last_activity", "name")
    )


@dataclass
class RunOverview:
    run: Run  # with `child_count`; experiment selected
    ancestors: list[Run]
    params: list[Param]
    metrics: list[LatestMetric]
    history: list[tuple[str, int, float | None]]  # (key, step, value) of keys with several values
    tags: list[RunTag]
    children: object  # django.core.paginator.Page of the direct children


def run_overview(run_id: str, *, children_page: int | str = 1, per_page: int = 20, order: list) -> RunOverview:
    """Everything the run page shows: 9 queries (run, ancestors, params, metrics, history
    counts, history, tags, children count and page), whatever the run's size."""
    run = Run.objects.with_child_count().select_related("experiment").get(run_id=run_id)
    metrics = list(LatestMetric.objects.filter(run=run).order_by("key"))
    counts = Metric.objects.filter(run=run).values("key").annotate(n=Count("pk")).filter(n__gt=1).values("key")
    history = Metric.objects.filter(run=run, key__in=counts).order_by("key", "step", "timestamp")
    children = _annotated(Run.objects.children_of(run).active(), match_q=None, show_deleted=False).order_by(*order)
    page = Paginator(children, per_page).get_page(children_page)
    page.object_list = list(page.object_list)
    for child in page.object_list:
        child.level, child.is_open, child.hidden, child.children_loaded = 0, False, False, False
    return RunOverview(
        run=run,
        ancestors=list(Run.objects.ancestors_of(run).only("run_id", "name", "depth", "path")),
        params=list(Param.objects.filter(run=run).order_by("key")),
        metrics=metrics,
        history=list(history.values_list("key", "step", "value")),
        tags=list(RunTag.objects.filter(run=run).order_by("key")),
        children=page,
    )
