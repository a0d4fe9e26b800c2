"""Hierarchy reads for the run-tree pages: a page of roots with the nodes the viewer opened,
matching runs shown inside their trees, one parent's children a page at a time.

Every read here costs a fixed number of queries whatever the size of the experiment: children
of many parents come from one windowed query, ancestors of many runs from one `pk IN (...)`
read off the materialized paths, and column values from one query per kind.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.core.paginator import Paginator
from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
    Window,
)
from django.db.models.functions import Cast, RowNumber, Substr

from tracker import hot_sql
from tracker.constants import NOTE_TAG, is_system_metric
from tracker.filtering import order_by_expressions
from tracker.goals import names_a_goal
from tracker.models import (
    ACTIVE,
    DELETED,
    PATH_SEGMENT_WIDTH,
    ROOT_SEGMENT,
    Experiment,
    LatestMetric,
    Param,
    Run,
    RunStatus,
    RunSummary,
    RunTag,
    path_ids,
)
from tracker.values import read_value

# The pk of a run's root: the first segment of its materialized path.
ROOT_PK = Cast(ROOT_SEGMENT, BigIntegerField())

# Under a filter, at most about this many matches are placed on a page (the rest are a "show
# more" away), shared out between the page's parents but never fewer than
# MIN_MATCHES_PER_PARENT each: rendering rows is what a page of many matches spends its time on.
# A full page of 50 trees shows each tree's first 3 matches and "Show more matching children"
# (3 of N shown): enough to see where the matches are and what they look like, in ~250 rows
# (a few screens) rather than the ~350 rows and 450 KiB that 6 a tree made; a page of fewer
# trees shows more of each (10 trees: 15 each).
MATCHES_PER_PAGE = 150
MIN_MATCHES_PER_PARENT = 3
# Up to this many matches are read in one pass (pk, parent, path: about 10 MB at most) and the
# page is worked out from that list. Past it, each step asks only about the page's own trees
# (see _Matches), and the count shown is "more than MATCH_SCAN_LIMIT".
MATCH_SCAN_LIMIT = 50_000

# Before reading the matches, the page asks the first BROAD_PROBE_ROOTS roots whether their trees
# hold a match (_RootWalk). When at least this share of them do, the filter is broad and its
# matches are never read: tags.subset = 'a' at a million runs (1 run in 4) took 0.8 s to read its
# first 50,000 matches and 0.5 s just to count them, the walk of 51 roots ~10 ms. A filter whose
# matches are few, or in few trees, pays for the probe, and a root without a match costs most (its
# whole tree is asked): 25 ms for 51 roots under tags.test_identifier = 'id_7' AND
# metrics.metric1 < 0.5 (1 tree in 50; its 10,000 matches are read in 65 ms). A dozen roots tell
# one case from the other as well; a broad filter then asks the rest of its first page's roots.
BROAD_PROBE_ROOTS = 12
BROAD_ROOT_SHARE = 0.5
# Each later batch of the walk is this many times the last: a deep page costs a few queries.
ROOT_WALK_GROWTH = 4
# A broad filter's matches are counted up to this many ("more than 10,000 matching runs"): the
# capped count costs 30–55 ms at a million runs (bench/million.py), a full count 0.5 s and more.
BROAD_COUNT_LIMIT = 10_000

# The tag chips and the column picker read keys off the latest runs only: a sweep's runs share
# their keys, and a GROUP BY over every tag of a 100,000-run experiment would cost more than
# the rest of the page.
KEY_SAMPLE_RUNS = 1000

# Tags that clients and Runtree write for their own bookkeeping; never offered as chips.
SYSTEM_TAG_PREFIXES = ("mlflow.", "runtree.")

# The run page lists a parent's children with this many of their metrics.
CHILD_METRIC_COLUMNS = 4

ATTRIBUTE_SORTS = {
    "name": F("name"),
    "status": F("status"),
    "start": F("start_time"),
    "end": F("end_time"),
    # In floating point: the difference of two int64 times can overflow a bigint (an imported
    # run's time may be any int64), and a sort needs no more than a double's precision.
    "duration": ExpressionWrapper(
        Cast("end_time", FloatField()) - Cast("start_time", FloatField()), output_field=FloatField()
    ),
}


# With no columns chosen, the tree shows this many of the experiment's most-logged metrics and
# of the params that vary between siblings: what a sweep's viewer wants to read off each row.
DEFAULT_METRIC_COLUMNS = 4
DEFAULT_PARAM_COLUMNS = 3

COLUMN_KINDS = ("params", "metrics", "tags")


@dataclass(frozen=True, order=True)
class TableColumn:
    """A param, metric or tag column of the tree: `params.lr`, `metrics.loss`, `tags.model`."""

    kind: str  # one of COLUMN_KINDS
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


@dataclass
class RootPage:
    """A page of roots, as the pager shows it. `count` (roots in all) is None when it was not
    worked out: under a broad filter, counting the trees that hold a match would evaluate the
    filter over the whole experiment, so that pager knows only whether a next page exists."""

    number: int  # from 1
    per_page: int
    object_list: object  # the page's roots: a sliced queryset, then a list once annotated
    has_next: bool
    count: int | None = None

    @classmethod
    def counted(cls, roots, page: int | str, per_page: int) -> "RootPage":
        """The page of an ordered queryset of roots, counted (Django's Paginator: a page past
        the end is the last page, one that is not a number the first)."""
        found = Paginator(roots, per_page).get_page(page)
        return cls(found.number, per_page, found.object_list, found.has_next(), found.paginator.count)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.object_list else 0

    @property
    def end_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.object_list)

    @property
    def num_pages(self) -> int | None:
        return None if self.count is None else max(1, -(-self.count // self.per_page))


@dataclass
class TreePage:
    page: RootPage
    rows: list = field(default_factory=list)  # Runs and MoreRows in display order
    match_count: int | None = None  # None when no filter is applied
    more_matches: bool = False  # the filter matches more than match_count runs (not counted)


def visible_runs(experiment: Experiment | int, *, show_deleted: bool = False):
    """The runs of an experiment a viewer sees: deleted ones only when asked for."""
    runs = Run.objects.in_experiment(experiment)
    return runs if show_deleted else runs.active()


# A function returning fresh ORDER BY expressions. One list of expressions must not serve two
# queries: when a queryset becomes a subquery (a page of pks, a windowed rank), Django relabels
# the subqueries inside its ordering, and a list shared with the outer query came out pointing at
# the wrong table alias (the siblings then kept their start order).
Order = Callable[[], list]


def sibling_order(sort_key: str, descending: bool) -> list:
    """ORDER BY expressions for siblings, always ending in run_id so pages are stable.

    `sort_key` is an attribute name (ATTRIBUTE_SORTS) or a column name (`metrics.x`, quoted as
    the filter language reads it), ordered as the filter language orders it."""
    if sort_key in ATTRIBUTE_SORTS:
        expression = ATTRIBUTE_SORTS[sort_key]
        primary = [expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)]
        return [*primary, F("run_id").asc()]
    # The filter language's orderings end in their own stable tie-breaks.
    return list(order_by_expressions([f"{sort_key} {'DESC' if descending else 'ASC'}"]))


def tree_rows(queryset, show_deleted: bool):
    """Rows as the tree shows them: with `child_count`."""
    return queryset.with_child_count(include_deleted=show_deleted)


def _matching(queryset, match_q: Q | None):
    """Under a filter, annotate `is_match`."""
    if match_q is None:
        return queryset
    return queryset.annotate(is_match=Case(When(match_q, then=Value(True)), default=Value(False)))


def _annotate_for(matches, show_deleted: bool):
    """What every row the tree shows is annotated with: `child_count`, and `is_match` when a
    filter's matches are too many to have been read."""

    def annotate(queryset):
        queryset = tree_rows(queryset, show_deleted)
        return matches.annotate(queryset) if matches is not None else queryset

    return annotate


def annotated_page(page_slice, order: Order, annotate) -> list[Run]:
    """The runs of a page (a sliced, ordered queryset), annotated only once the page is cut:
    a database works out the select list even for the rows OFFSET skips, so annotating before
    paging costs a child count per skipped row on page 200 of 10,000 children."""
    return list(annotate(Run.objects.filter(pk__in=page_slice.values("pk"))).order_by(*order()))


def _first_children(queryset, *, order: Order, limit: int, annotate) -> list[Run]:
    """The first `limit` children of every parent in `queryset`, in one query: the window ranks
    bare pks, and only the rows kept get `annotate`'s (costlier) annotations."""
    ranked = queryset.annotate(sibling_rank=Window(RowNumber(), partition_by=[F("parent_id")], order_by=order()))
    kept = ranked.filter(sibling_rank__lte=limit).values("pk")
    return list(annotate(Run.objects.filter(pk__in=kept)).order_by("parent_id", *order()))


def tree_page(
    experiment: Experiment,
    *,
    order: Order,
    match_q: Q | None = None,
    page: int | str = 1,
    per_page: int = 50,
    expanded: frozenset[str] = frozenset(),
    collapsed: frozenset[str] = frozenset(),
    show_deleted: bool = False,
    columns: tuple[TableColumn, ...] = (),
    summary_key: str = "",
) -> TreePage:
    """A page of an experiment's run tree, flattened to rows in display order.

    Roots are paged. A run in `expanded` (run ids) shows its first `per_page` children. Under a
    filter (`match_q`), roots are those whose tree holds a match; each match on the page is
    shown inside its tree (its ancestors are fetched and opened as context), at most
    `per_page` per parent (fewer when the page holds many trees) and MATCHES_PER_PAGE in all.
    A run in `collapsed` keeps its rows but hides them. Runs get `level`, `is_open`, `hidden`,
    `children_loaded`, `cells` (one per column) and, under a filter, `is_match`.

    Queries: roots count and page (2); children of expanded runs (1, if any); under a filter,
    the first roots asked whether they hold a match (1), the matches read once (1) and the
    page's matches with their ancestors (1) — for a broad filter instead the rest of the first
    page's roots asked (1), a capped count (1), the roots count and more of them asked (1 + a
    few, only past the first page), the page (1),
    its matches (1) and their ancestors (1); params and latest metrics for the columns (1 per
    kind, if any).
    """
    runs = visible_runs(experiment, show_deleted=show_deleted)
    roots = runs.roots()
    matches = None
    if match_q is not None:
        matches = _Matches.find(runs, roots, match_q, order, per_page)
        page_obj = matches.roots_page(roots, order, page, per_page)
    else:
        page_obj = RootPage.counted(roots.order_by(*order()), page, per_page)
    annotate = _annotate_for(matches, show_deleted)
    root_rows = page_obj.object_list = annotated_page(page_obj.object_list, order, annotate)
    counted = {"match_count": matches.count, "more_matches": matches.more} if matches else {}
    if not root_rows:
        return TreePage(page=page_obj, **counted)

    children: dict[int, list[Run]] = defaultdict(list)
    more: dict[int, tuple[int, int]] = {}
    if expanded:
        # Only the trees on this page: an index prefix match per root.
        on_page = reduce(or_, (Q(path__startswith=root.path) for root in root_rows))
        parents = runs.filter(on_page, parent__run_id__in=expanded)
        for run in _first_children(parents, order=order, limit=per_page, annotate=annotate):
            children[run.parent_id].append(run)
    if matches is not None:
        _place_matches(matches, root_rows, order, per_page, show_deleted, children, more)

    by_pk = {run.pk: run for run in root_rows}
    for run_list in children.values():
        by_pk.update((run.pk, run) for run in run_list)
    if matches is not None:
        matches.mark(by_pk.values())
    expanded_pks = {run.pk for run in by_pk.values() if run.run_id in expanded}
    # A run whose children are shown because of matches is open, as context.
    open_pks = expanded_pks | set(children)
    ctx = {"children": children, "open": open_pks, "expanded": expanded_pks, "more": more, "collapsed": collapsed}
    rows: list = []
    for root in root_rows:
        _flatten(root, 0, False, ctx, rows)
    shown = [row for row in rows if isinstance(row, Run)]
    attach_columns(shown, columns)
    attach_summaries(shown, summary_key)
    return TreePage(page=page_obj, rows=rows, **counted)


class _Matches:
    """The runs a filter matches, as the tree page uses them.

    Evaluating a filter over a whole experiment is the page's one costly step (it reads every
    tag or metric row it names), so when the matches are few enough they are read once, in
    sibling order, and everything else (the count, the roots holding a match, the matches
    placed on the page, which rows match) is worked out from that list. A broad filter
    (_BroadMatches: half the first roots hold a match, or the matches are too many to read) is
    never evaluated over the whole experiment: the page's roots are found by asking the roots in
    order whether their tree holds a match (_RootWalk), the matches placed are read from the
    page's trees alone, and the count shown is capped."""

    count: int
    more = False  # True when the filter matches more than `count` runs

    @staticmethod
    def find(runs, roots, match_q: Q, order: Order, per_page: int) -> "_Matches":
        matches = runs.filter(match_q)
        walk = _RootWalk(roots, matches, order)
        probe = min(BROAD_PROBE_ROOTS, per_page + 1)
        walk.extend(probe)
        if len(walk.holding) >= BROAD_ROOT_SHARE * probe:
            if probe < per_page + 1:
                # The rest of the first page's roots in one more batch (not the roots counted and a
                # batch 4 times the probe, as a later page would).
                walk.extend(per_page + 1 - probe)
            return _BroadMatches(matches, match_q, order, walk, count=None)
        found = list(matches.order_by(*order()).values_list("pk", "parent_id", "path")[: MATCH_SCAN_LIMIT + 1])
        if len(found) <= MATCH_SCAN_LIMIT:
            return _ScannedMatches(runs, matches, found)
        return _BroadMatches(matches, match_q, order, walk, count=MATCH_SCAN_LIMIT)

    def roots_page(self, roots, order: Order, page: int | str, per_page: int) -> RootPage:
        raise NotImplementedError


class _RootWalk:
    """The roots whose tree holds a match, in page order, found by asking the roots in order,
    a batch at a time. Each batch is one query: an EXISTS per root that stops at the tree's first
    match (run_root_idx). The batch is a bounded subquery so that PostgreSQL plans a nested loop
    over its roots: asked of all roots at once (or in the select list), it hashed every match of
    the experiment first (1.1 s for tags.subset = 'a' at a million runs)."""

    def __init__(self, roots, matches, order: Order):
        self.roots, self.order = roots, order
        in_tree = matches.alias(root_segment=ROOT_SEGMENT).filter(
            root_segment=Substr(OuterRef("path"), 1, PATH_SEGMENT_WIDTH)
        )
        self.in_tree = Exists(in_tree)
        self.holding: list[int] = []
        self.walked = 0
        self.total: int | None = None  # the number of roots, once a walk needs it

    @property
    def done(self) -> bool:
        return self.total is not None and self.walked >= self.total

    def extend(self, size: int) -> None:
        """Ask the next `size` roots."""
        batch = self.roots.order_by(*self.order()).values("pk")[self.walked : self.walked + size]
        found = Run.objects.filter(pk__in=batch).filter(self.in_tree).order_by(*self.order())
        # A run that arrives between two batches shifts the roots after it by one: a root on the
        # boundary is asked twice, and must not be shown twice.
        seen = set(self.holding)
        self.holding += [pk for pk in found.values_list("pk", flat=True) if pk not in seen]
        self.walked += size

    def page(self, number: int, per_page: int) -> RootPage:
        """Page `number` of the roots holding a match, walking on (in growing batches) until it
        and one root more are found or every root is asked. The roots are counted (1 query) only
        past the first batch; a page far down walks every root before it."""
        wanted = number * per_page + 1
        size = self.walked
        while len(self.holding) < wanted:
            if self.total is None:
                self.total = self.roots.count()
            if self.done:
                break
            size *= ROOT_WALK_GROWTH
            self.extend(size)
        on_page = self.holding[(number - 1) * per_page : number * per_page]
        count = len(self.holding) if self.done else None
        has_next = len(self.holding) > number * per_page
        return RootPage(number, per_page, Run.objects.filter(pk__in=on_page), has_next=has_next, count=count)


def _root_pk(path: str) -> int:
    """The root's pk off a materialized path (ROOT_PK in Python): called once per match."""
    return int(path[:PATH_SEGMENT_WIDTH])


class _ScannedMatches(_Matches):
    def __init__(self, runs, matches, found: list[tuple[int, int | None, str]]):
        self.runs, self.matches, self.found = runs, matches, found
        self.count = len(found)
        self.pks = {pk for pk, _, _ in found}

    def roots_page(self, roots, order: Order, page: int | str, per_page: int) -> RootPage:
        root_pks = {_root_pk(path) for _, _, path in self.found}
        limit = connection.features.max_query_params
        if limit is None or len(root_pks) < limit // 2:
            # A path's first segment is always a root's pk (tracker/services/placement.py keeps
            # paths whole), so the visible runs of these pks are the roots holding a match.
            # Asked of `roots`, whose `parent IS NULL` PostgreSQL chose to read through the
            # parent index, each of the two queries walked every root of the experiment (10,000
            # at a million runs: 5.6 ms, where the primary key takes 0.3).
            holding = self.runs.filter(pk__in=root_pks)
        else:
            # More roots than the database takes as parameters (SQLite): one more pass.
            holding = roots.filter(pk__in=self.matches.annotate(root_pk=ROOT_PK).values("root_pk"))
        return RootPage.counted(holding.order_by(*order()), page, per_page)

    def annotate(self, queryset):
        return queryset  # `mark` says which rows match, from the list

    def mark(self, runs) -> None:
        for run in runs:
            run.is_match = run.pk in self.pks

    def on_page(self, root_rows, per_page: int) -> tuple[list[tuple[int, str]], dict[int, int]]:
        """The matches below the page's roots to show, as (pk, path), and each parent's number of
        matching children: the first `per_page` per parent, MATCHES_PER_PAGE in all."""
        page_roots = {root.pk for root in root_rows}
        placed, per_parent = [], defaultdict(int)
        for pk, parent_pk, path in self.found:
            if parent_pk is None or _root_pk(path) not in page_roots:
                continue
            per_parent[parent_pk] += 1
            if per_parent[parent_pk] <= per_page and len(placed) < MATCHES_PER_PAGE:
                placed.append((pk, path))
        return placed, per_parent


class _BroadMatches(_Matches):
    """Matches too many to read: the page's roots come from the walk, the matches placed from
    the page's trees alone, and the count is capped (`count` is given when the read that found
    them too many already said how many it read)."""

    def __init__(self, matches, match_q: Q, order: Order, walk: _RootWalk, *, count: int | None):
        self.matches, self.match_q, self.order, self.walk = matches, match_q, order, walk
        if count is None:
            count = matches.values("pk")[: BROAD_COUNT_LIMIT + 1].count()
            count, self.more = min(count, BROAD_COUNT_LIMIT), count > BROAD_COUNT_LIMIT
        else:
            self.more = True
        self.count = count

    def roots_page(self, roots, order: Order, page: int | str, per_page: int) -> RootPage:
        return self.walk.page(_page_number(page), per_page)

    def annotate(self, queryset):
        return queryset.annotate(is_match=Case(When(self.match_q, then=Value(True)), default=Value(False)))

    def mark(self, runs) -> None:
        pass  # `annotate` did

    def on_page(self, root_rows, per_page: int) -> tuple[list[tuple[int, str]], dict[int, int]]:
        on_page = reduce(or_, (Q(path__startswith=root.path) for root in root_rows))
        ranked = (
            self.matches.filter(on_page, depth__gt=0)
            .annotate(
                rank_in_parent=Window(RowNumber(), partition_by=[F("parent_id")], order_by=self.order()),
                rank_on_page=Window(RowNumber(), order_by=self.order()),
                matches_in_parent=Window(Count("pk"), partition_by=[F("parent_id")]),
            )
            .filter(rank_in_parent__lte=per_page)
            .order_by("rank_on_page")
            .values_list("pk", "path", "parent_id", "matches_in_parent")[:MATCHES_PER_PAGE]
        )
        placed, per_parent = [], {}
        for pk, path, parent_pk, total in ranked:
            placed.append((pk, path))
            per_parent[parent_pk] = total
        return placed, per_parent


def _page_number(page: int | str) -> int:
    """A page number as asked for; the first page for anything else (as Django's Paginator)."""
    try:
        return max(1, int(page))
    except (TypeError, ValueError):
        return 1


def _place_matches(matches: _Matches, root_rows, order, per_page, show_deleted, children, more) -> None:
    """Put this page's matches (below the roots) and their ancestors into `children`, and note
    in `more` each parent with matching children not shown: (shown, total).

    The first matches of a parent in sibling order (up to `per_page`, fewer when the page holds
    many trees) are the ones shown, so "show more" continues at an offset. Children already
    listed for an expanded parent stay as they are: a viewer who expanded a parent asked for all
    of its children."""
    per_parent = min(per_page, max(MIN_MATCHES_PER_PARENT, MATCHES_PER_PAGE // len(root_rows)))
    placed, matches_in_parent = matches.on_page(root_rows, per_parent)
    if not placed:
        return
    wanted: set[int] = set()
    for _pk, path in placed:
        wanted.update(path_ids(path)[1:])  # the match and its ancestors below the root
    expanded_parents = set(children)
    known = {run.pk for run_list in children.values() for run in run_list}
    # Ancestors are read whether deleted or not, so a match's chain is never broken.
    rows = matches.annotate(tree_rows(Run.objects.filter(pk__in=wanted - known), show_deleted))
    rows = list(rows.order_by(*order()))
    matches.mark(rows)
    shown: dict[int, int] = defaultdict(int)
    for run in rows:
        if run.parent_id in expanded_parents:
            continue
        children[run.parent_id].append(run)
        if run.is_match:
            shown[run.parent_id] += 1
    for parent_pk, total in matches_in_parent.items():
        if parent_pk not in expanded_parents and shown[parent_pk] < total:
            more[parent_pk] = (shown[parent_pk], total)


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
    order: Order,
    offset: int = 0,
    limit: int = 50,
    match_q: Q | None = None,
    matches_only: bool = False,
    show_deleted: bool = False,
    columns: tuple[TableColumn, ...] = (),
    level: int = 0,
    summary_key: str = "",
) -> list:
    """One page of `parent`'s children (or, with `matches_only`, of its matching children),
    as rows at `level`, ending in a MoreRow when there are more.

    Queries: the count (1, only for matches_only: otherwise `parent.child_count` is used), the
    page (1), the column values (1 per kind) and the summaries of `summary_key` (1, if any parent)."""
    queryset = Run.objects.children_of(parent)
    if not show_deleted:
        queryset = queryset.filter(lifecycle_stage=ACTIVE)
    if matches_only and match_q is not None:
        queryset = queryset.filter(match_q)
        total = queryset.count()
    else:
        total = parent.child_count
    page_slice = queryset.order_by(*order())[offset : offset + limit]
    rows: list = annotated_page(page_slice, order, lambda q: _matching(tree_rows(q, show_deleted), match_q))
    for run in rows:
        run.level, run.is_open, run.hidden, run.children_loaded = level, False, False, False
    attach_columns(rows, columns)
    attach_summaries(rows, summary_key)
    if offset + len(rows) < total:
        rows.append(MoreRow(parent, offset + len(rows), total, matches_only=matches_only, level=level))
    return rows


def attach_columns(runs: list[Run], columns: tuple[TableColumn, ...]) -> None:
    """Set `run.cells`, a (column, value) per column (None when the run lacks the key; a
    metric's NaN is float NaN), and `run.note`, its description (the row's tooltip): one query
    per kind of column, the tags' always (for the description)."""
    found: dict[tuple[int, str], object] = {}
    pks = [run.pk for run in runs]
    for kind, model in (("params", Param), ("metrics", LatestMetric), ("tags", RunTag)):
        keys = [column.key for column in columns if column.kind == kind]
        if kind == "tags":
            keys.append(NOTE_TAG)
        if not keys or not pks:
            continue
        for run_pk, key, value in model.objects.filter(run__in=pks, key__in=keys).values_list("run", "key", "value"):
            found[(run_pk, f"{kind}.{key}")] = read_value(value)
    for run in runs:
        run.cells = [(column, found.get((run.pk, column.name))) for column in columns]
        run.note = found.get((run.pk, f"tags.{NOTE_TAG}"), "")


def attach_summaries(runs: list[Run], key: str) -> None:
    """Set `run.best` on every run: its RunSummary for `key` with `best_run` loaded, or None
    (a leaf, no key, or nothing computed yet). One query, only for the runs with children."""
    parent_pks = [run.pk for run in runs if run.child_count]
    found = {}
    if key and parent_pks:
        rows = RunSummary.objects.filter(run_id__in=parent_pks, key=key).select_related("best_run")
        found = {summary.run_id: summary for summary in rows.only(*_SUMMARY_FIELDS)}
    for run in runs:
        run.best = found.get(run.pk)


# What the best-child cell shows: not the best run's whole row.
_SUMMARY_FIELDS = ("run", "key", "goal", "best_value", "best_params", "best_run__run_id", "best_run__name")


def summary_keys(experiment: Experiment) -> list[str]:
    """The metric keys the experiment's parents have summaries of, in order (one query): the
    best-child column's choices, and the metrics the goal switch is offered for."""
    return hot_sql.summary_keys(experiment.pk)


def _recent_run_pks(experiment: Experiment):
    return Run.objects.in_experiment(experiment).order_by("-start_time").values("pk")[:KEY_SAMPLE_RUNS]


def common_tags(experiment: Experiment, *, limit: int = 12) -> list[tuple[str, str, int]]:
    """The most common (key, value, count) user tags on the experiment's latest runs (one query)."""
    tags = RunTag.objects.filter(run__in=Subquery(_recent_run_pks(experiment)))
    for prefix in SYSTEM_TAG_PREFIXES:
        tags = tags.exclude(key__startswith=prefix)
    counted = tags.values("key", "value").annotate(n=Count("pk")).order_by("-n", "key", "value")[:limit]
    return [(row["key"], row["value"], row["n"]) for row in counted]


@dataclass(frozen=True)
class ColumnCatalog:
    """The columns an experiment's tree can show, and the ones it shows when none are chosen."""

    choices: list[TableColumn]  # params, metrics and user tags, by kind then key
    defaults: tuple[TableColumn, ...]  # the most-logged metrics, then the params that vary between siblings
    primary_metric: str  # the most-logged metric: the best-child column's default ("" if none)


def column_catalog(experiment: Experiment) -> ColumnCatalog:
    """Param, metric and user-tag keys logged on the experiment's latest runs, how many runs
    logged each, and whether a param's value differs between siblings (one query: each kind
    grouped by parent and key, so a param constant within every sweep is told from one the
    sweep varies)."""
    recent = Subquery(_recent_run_pks(experiment))
    grouped = []
    for kind, model in (("params", Param), ("metrics", LatestMetric), ("tags", RunTag)):
        rows = model.objects.filter(run__in=recent)
        if kind == "tags":
            for prefix in SYSTEM_TAG_PREFIXES:
                rows = rows.exclude(key__startswith=prefix)
        grouped.append(
            rows.order_by()
            .values("run__parent_id", "key")
            .annotate(kind=Value(kind), runs=Count("pk"), values=Count("value", distinct=True))
            .values_list("kind", "key", "runs", "values")
        )
    logged: dict[TableColumn, int] = defaultdict(int)
    varying: set[TableColumn] = set()
    for kind, key, runs, values in grouped[0].union(*grouped[1:], all=True):
        column = TableColumn(kind, key)
        logged[column] += runs
        if values > 1:
            varying.add(column)
    # Most runs first; among equals a name that says which way is better (`r2`, `val_loss`)
    # before one that does not (`fit_time`, `epoch`).
    by_use = sorted(logged, key=lambda column: (-logged[column], not names_a_goal(column.key), column.key))
    # The machine's metrics (system/...) are offered among the choices, never shown unasked.
    metrics = [column for column in by_use if column.kind == "metrics" and not is_system_metric(column.key)]
    params = [column for column in by_use if column.kind == "params" and column in varying]
    return ColumnCatalog(
        choices=sorted(logged),
        defaults=(*metrics[:DEFAULT_METRIC_COLUMNS], *params[:DEFAULT_PARAM_COLUMNS]),
        primary_metric=metrics[0].key if metrics else "",
    )


@dataclass(frozen=True)
class LiveVersion:
    """What a live page compares between polls: `token` changes with any run added, ended,
    deleted or restored, any metric point logged to a running run, and any summary recomputed;
    `running` is how many of the experiment's runs are RUNNING (the page polls while any is)."""

    token: str
    running: int
    deleted: int = 0  # the experiment's deleted runs (an experiment's version only)


def live_version(experiment_id: int) -> LiveVersion:
    """The experiment's LiveVersion: one fixed statement (tracker/hot_sql.py)."""
    markers = hot_sql.live_version(experiment_id, deleted=DELETED, running=RunStatus.RUNNING)
    return LiveVersion(
        token="-".join(str(marker or 0) for marker in markers),
        running=int(markers[2].split(".")[0]),
        deleted=int(markers[1] or 0),
    )


def runs_under_deleted_parents(experiment_id: int) -> int:
    """Active runs whose parent is deleted: the tree hides them with it (a tree hangs from its
    root), so the page says how many, and where to find them. From the deleted runs (a partial
    index) to their children (the parent index): never a scan of the experiment."""
    deleted = Run.objects.filter(experiment_id=experiment_id, lifecycle_stage=DELETED).values("pk")
    return Run.objects.filter(parent_id__in=deleted, lifecycle_stage=ACTIVE).count()


def run_live_version(run_id: str) -> LiveVersion | None:
    """The run page's LiveVersion (None for an unknown run): `running` counts the run itself and
    its running children. One statement (tracker/hot_sql.py)."""
    return runs_live_version([run_id])


def runs_live_version(run_ids: Sequence[str]) -> LiveVersion | None:
    """Several runs watched as one (compare sweeps watches its parents): the token changes when
    any one's would on its run page, and `running` adds theirs up. None when none is known. One
    statement."""
    run_ids = list(dict.fromkeys(run_ids))
    found = hot_sql.runs_live_versions(run_ids, running=RunStatus.RUNNING)
    versions = [_run_live_version(found[run_id]) for run_id in run_ids if run_id in found]
    if not versions:
        return None
    return LiveVersion(
        token="_".join(version.token for version in versions), running=sum(version.running for version in versions)
    )


def _run_live_version(markers: tuple) -> LiveVersion:
    running = int(markers[0] == RunStatus.RUNNING) + int(markers[-1] or 0)
    return LiveVersion(token="-".join(str(marker or 0) for marker in markers), running=running)
