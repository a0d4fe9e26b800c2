"""Best-child summaries: for each parent and metric, the best descendant and the spread of its children.

How a summary stays fresh:

1. A write to a run (through tracker/hierarchy_events.py) marks its parent `summary_stale`
   inside the write's transaction, and after commit queues one refresh per tree, coalesced
   through the root's `summary_queued` flag: a burst of writes into one tree queues one task
   while that task waits, not one per write.
2. `tracker.tasks.refresh_tree` recomputes the tree's stale runs deepest first. Each run is
   claimed with a conditional update inside its own transaction: two workers never compute one
   run at once, and a worker killed mid-way leaves the run stale rather than half-done. The
   same transaction marks the run's parent stale, so staleness climbs to the root one level at
   a time, and a parent computed by another worker from this run's old summary never stays so.
3. `tracker.tasks.repair_stale_summaries` (beat) re-queues every tree still holding stale runs.

A summary is recomputed from the data, never incremented, so computing it twice is harmless.
"""

import heapq
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Case, Count, Exists, F, FloatField, Max, Min, OuterRef, QuerySet, StdDev, When, Window
from django.db.models.functions import RowNumber, Substr
from kombu.exceptions import OperationalError as BrokerUnavailable

from tracker import hot_sql
from tracker.constants import BEST_TAG_PREFIX
from tracker.goals import goal_in, goals_of
from tracker.models import (
    ACTIVE,
    PATH_SEGMENT_WIDTH,
    Experiment,
    Goal,
    LatestMetric,
    Param,
    Run,
    RunSummary,
    path_ids,
    path_segment,
)
from tracker.values import number_or_none

logger = logging.getLogger(__name__)


# --- reads for the pages and the APIs ----------------------------------------------------------


def summaries_for(run_pks: Iterable[int]) -> dict[int, list[RunSummary]]:
    """Each run's summary rows in key order, best run attached (one query). Runs without a
    summary (no children, or none with a number) map to an empty list."""
    run_pks = list(run_pks)
    found: dict[int, list[RunSummary]] = {pk: [] for pk in run_pks}
    rows = RunSummary.objects.filter(run_id__in=run_pks).select_related("best_run").order_by("run_id", "key")
    for summary in rows:
        found[summary.run_id].append(summary)
    return found


def reserved_tags_for(run_pks: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
    """The read-only MLflow tags each parent carries for its best descendant (one query per
    30,000 runs): `runtree.best.<metric>` (repr of the float), `runtree.best.<metric>.run_id`
    and `runtree.best.<metric>.params.<param>`, in key order. Runs without a summary map to []."""
    run_pks = list(run_pks)
    tags: dict[int, list[tuple[str, str]]] = {pk: [] for pk in run_pks}
    for run_pk, key, best_value, best_run_id, best_params in hot_sql.best_summaries_of(run_pks):
        prefix = f"{BEST_TAG_PREFIX}{key}"
        tags[run_pk].append((prefix, repr(best_value)))
        tags[run_pk].append((f"{prefix}.run_id", best_run_id))
        tags[run_pk].extend((f"{prefix}.params.{name}", best_params[name]) for name in sorted(best_params))
    return tags


# --- marking stale and queuing (called by tracker/hierarchy_events.py inside a write) -----------


def mark_parents_stale(*, run: Run, old_parent_pk: int | None = None) -> None:
    """Mark `run`'s parent (and its old parent, after a move) stale, and queue their trees'
    refresh for after commit. Only the parent: its refresh marks the grandparent in turn, so the
    write locks one row rather than a whole chain every writer of the tree would queue on."""
    parents = {}  # parent pk → its tree's root pk
    if run.parent_id is not None:
        parents[run.parent_id] = path_ids(run.path)[0]
    if old_parent_pk is not None:
        old_parent_path = Run.objects.filter(pk=old_parent_pk).values_list("path", flat=True).first()
        if old_parent_path:
            parents[old_parent_pk] = path_ids(old_parent_path)[0]
    if not parents:
        return
    if len(parents) == 1:
        # The hot path (every logged metric of a child): one row, so no lock order to keep.
        hot_sql.mark_stale(next(iter(parents)))
    else:
        _mark_stale(Run.objects.filter(pk__in=parents))
    queue_refresh_after_commit(parents.values())


def mark_experiment_stale(*, experiment: Experiment) -> None:
    """Mark every parent in `experiment` stale (its goal for a metric changed) and queue every tree."""
    has_children = Exists(Run.objects.filter(parent=OuterRef("pk")))
    _mark_stale(Run.objects.filter(has_children, experiment=experiment))
    roots = Run.objects.filter(has_children, experiment=experiment, parent__isnull=True)
    queue_refresh_after_commit(roots.values_list("pk", flat=True))


def _mark_stale(runs: QuerySet) -> None:
    """Set `summary_stale` on `runs` in one UPDATE that takes their row locks in id order.

    The lock is the point: it orders this write against a refresh that claims the same run
    (the refresh waits for this commit and then reads this write's data, or this write waits
    for the refresh and marks the run stale again), so the update is unconditional. The id order
    is the one every transaction here takes Run rows in, so none waits for another in a cycle; a
    plain multi-row UPDATE locks rows in whatever order it meets them, which deadlocked writers
    on PostgreSQL. (SQLite has one writer at a time and no FOR UPDATE.)"""
    # savepoint=False: nothing extra inside the write's transaction; a transaction of its own
    # outside one, which FOR UPDATE needs.
    with transaction.atomic(savepoint=False):
        in_lock_order = runs.order_by("pk").select_for_update().values("pk")
        Run.objects.filter(pk__in=in_lock_order).update(summary_stale=True)


def queue_refresh_after_commit(root_pks: Iterable[int]) -> None:
    """Queue a refresh of each tree once the current transaction commits (at once outside one):
    a worker must never look before the write it is meant to see is visible."""
    for root_pk in sorted(set(root_pks)):
        # robust: the write has committed; a failing refresh must not answer 5xx and be retried.
        # (A lambda, not a partial: Django names the failed callback by its __qualname__.)
        transaction.on_commit(lambda pk=root_pk: queue_tree_refresh(pk), robust=True)


# Trees this process queued a delayed refresh for, and when (time.monotonic()). A write within
# most of the delay needs neither the claim's UPDATE nor a publish: the task, not started yet,
# will read it. Past that margin the claim decides, as for any write.
_queued_here: dict[int, float] = {}
_QUEUED_HERE_MARGIN = 0.8


def _queued_here_within(root_pk: int, delay: float) -> bool:
    queued_at = _queued_here.get(root_pk)
    if queued_at is None:
        return False
    if time.monotonic() - queued_at < delay * _QUEUED_HERE_MARGIN:
        return True
    del _queued_here[root_pk]
    return False


def queue_tree_refresh(root_pk: int, *, even_if_queued: bool = False) -> bool:
    """Queue `refresh_tree` for the tree under `root_pk`, unless one is queued already.

    The conditional update is the claim: of many writers finishing at once, one sees 1 row and
    queues; the others see 0. The task clears the flag as it starts. The repair passes
    `even_if_queued`, because a task lost with a killed worker leaves the flag set."""
    delay = settings.RUNTREE_SUMMARY_REFRESH_DELAY_MS / 1000
    if delay and not even_if_queued and _queued_here_within(root_pk, delay):
        return False  # this process's queued task has not started yet: it will see this write
    claimed = Run.objects.filter(pk=root_pk, summary_queued=False).update(summary_queued=True) == 1
    if not (claimed or even_if_queued):
        return False
    from tracker.tasks import refresh_tree  # tasks imports this module

    try:
        if delay:
            refresh_tree.apply_async((root_pk,), countdown=delay)
            if len(_queued_here) > 10_000:  # only a shortcut: forgetting it is always safe
                _queued_here.clear()
            _queued_here[root_pk] = time.monotonic()
        else:
            refresh_tree.delay(root_pk)
    except BrokerUnavailable:
        # The write has committed; the summary is only late. The claim stays set, so the tree's
        # next writes do not each wait out the broker's timeout; the periodic repair (which
        # ignores the claim) queues the tree once the broker is back.
        logger.warning("Could not queue a summary refresh for tree %s: broker unreachable", root_pk, exc_info=True)
        return False
    return True


# --- refreshing (the Celery tasks call these) ----------------------------------------------------


def refresh_tree(*, root_pk: int) -> int:
    """Recompute every stale summary in the tree under `root_pk` until none is left; return how
    many this call computed (runs another worker claimed first are skipped)."""
    # Cleared before looking: a write that lands while this runs queues another pass rather than
    # finding the flag set and assuming this pass will see it.
    Run.objects.filter(pk=root_pk).update(summary_queued=False)
    stale_in_tree = Run.objects.filter(path__startswith=path_segment(root_pk), summary_stale=True)
    goals = _GoalsByExperiment()
    computed = 0
    for _ in range(MAX_PASSES_PER_TASK):
        stale = list(stale_in_tree.values_list("pk", "path", "experiment_id"))
        if not stale:
            return computed
        computed += _refresh_deepest_first(stale, goals)
    # Writes keep landing below: let other trees' tasks go first, then carry on (unless a write
    # has queued the next task already).
    if stale_in_tree.exists():
        queue_tree_refresh(root_pk)
    return computed


# A pass refreshes what was stale when it began; writes landing meanwhile need another. A tree
# still busy after this many gives way to other trees' tasks.
MAX_PASSES_PER_TASK = 20


def _refresh_deepest_first(stale: list[tuple[int, str, int]], goals: "_GoalsByExperiment") -> int:
    """Refresh the runs (pk, path, experiment id) deepest first. Refreshing a run makes its parent
    stale, so the parent joins the queue, at its depth: a root is done in the same pass as the
    leaves' parents below it, after all of them."""
    queue = [(-len(path_ids(path)), run_pk, path, experiment_id) for run_pk, path, experiment_id in stale]
    heapq.heapify(queue)
    seen = {run_pk for run_pk, _, _ in stale}
    computed = 0
    while queue:
        negative_depth, run_pk, path, experiment_id = heapq.heappop(queue)
        ids = path_ids(path)
        parent_pk = ids[-2] if len(ids) > 1 else None
        if not refresh_stale_run(run_pk, parent_pk=parent_pk, goals=goals[experiment_id]):
            continue
        computed += 1
        if parent_pk is not None and parent_pk not in seen:
            seen.add(parent_pk)
            parent_path = path[: -len(path_segment(run_pk))]
            heapq.heappush(queue, (negative_depth + 1, parent_pk, parent_path, experiment_id))
    return computed


def refresh_stale_run(run_pk: int, *, parent_pk: int | None, goals: dict[str, str]) -> bool:
    """Recompute `run_pk`'s summary if it is still stale and nobody else has claimed it."""
    return _refresh(run_pk, parent_pk=parent_pk, goals=goals, only_if_stale=True)


def _refresh(run_pk: int, *, parent_pk: int | None, goals: dict[str, str], only_if_stale: bool) -> bool:
    with transaction.atomic():
        if parent_pk is not None:
            # The row locks this transaction needs, in id order: the order writers take them in
            # (_mark_stale), so neither waits for the other in a cycle.
            locking = Run.objects.filter(pk__in=[run_pk, parent_pk]).order_by("pk").select_for_update()
            list(locking.values_list("pk", flat=True))
        claim = Run.objects.filter(pk=run_pk)
        if only_if_stale:
            # The claim: a worker that got here first leaves 0 rows to update. It commits with the
            # new summary, so a worker killed in between leaves the run stale for the repair.
            claim = claim.filter(summary_stale=True)
        if claim.update(summary_stale=False) != 1:
            return False
        recompute_summary(run_pk, goals=goals)
        if parent_pk is not None:
            # The parent's summary is built on this one. It may have been recomputed a moment ago
            # from this run's old summary by another worker (whose list was taken before this run
            # went stale), so it is stale again from this commit on, whatever it says now.
            Run.objects.filter(pk=parent_pk).update(summary_stale=True)
    return True


def requeue_stale_trees() -> int:
    """Queue a refresh of every tree that still holds a stale summary; return how many trees."""
    root_segments = (
        Run.objects.filter(summary_stale=True)
        .annotate(root_segment=Substr("path", 1, PATH_SEGMENT_WIDTH))
        .order_by()
        .values_list("root_segment", flat=True)
        .distinct()
    )
    roots = sorted({int(segment) for segment in root_segments if segment})
    for root_pk in roots:
        queue_tree_refresh(root_pk, even_if_queued=True)
    return len(roots)


def recompute_all(
    *,
    experiment_id: int | None = None,
    progress: Callable[[Iterable, int], Iterable] = lambda rows, total: rows,
) -> int:
    """Recompute the summary of every parent (and every run that still has summary rows),
    deepest first, in all experiments or one; return how many runs. `progress(rows, total)` may
    wrap the iteration (the management command passes tqdm)."""
    has_children = Exists(Run.objects.filter(parent=OuterRef("pk")))
    has_summary = Exists(RunSummary.objects.filter(run=OuterRef("pk")))
    runs = Run.objects.filter(has_children | has_summary)
    if experiment_id is not None:
        runs = runs.filter(experiment_id=experiment_id)
    rows = list(runs.order_by("-depth", "pk").values_list("pk", "parent_id", "experiment_id"))
    goals = _GoalsByExperiment()
    for run_pk, parent_pk, run_experiment_id in progress(rows, len(rows)):
        _refresh(run_pk, parent_pk=parent_pk, goals=goals[run_experiment_id], only_if_stale=False)
    return len(rows)


class _GoalsByExperiment(dict):
    """Experiment id → its goals, read once per refresh (a tree lives in one experiment)."""

    def __missing__(self, experiment_id: int) -> dict[str, str]:
        self[experiment_id] = goals_of(experiment_id)
        return self[experiment_id]


# --- the computation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    value: float
    run_pk: int
    start_time: int | None
    run_id: str

    def rank(self, goal: str) -> tuple:
        """Sort key, best first: by the goal, then earliest start (unknown last), then run id."""
        signed = self.value if goal == Goal.MIN else -self.value
        return (signed, self.start_time is None, self.start_time or 0, self.run_id)


def recompute_summary(run_pk: int, *, goals: dict[str, str]) -> None:
    """Rewrite `run_pk`'s summary rows from its active children: their own latest values and their
    own summaries (so the best covers the whole subtree). A constant number of queries, whatever
    the number of children: stats, best own value, best child summary, params, delete, upsert."""
    own_values = LatestMetric.objects.filter(run__parent_id=run_pk, run__lifecycle_stage=ACTIVE, value__isnull=False)
    # Children's summaries already cover their active subtrees, so one level is enough here; a
    # deleted child's summary is left out, and with it its whole subtree.
    child_bests = RunSummary.objects.filter(
        run__parent_id=run_pk, run__lifecycle_stage=ACTIVE, best_value__isnull=False, best_run__isnull=False
    )
    # 1. count/min/max/mean/std over the direct children's own values (NaN is NULL: not counted).
    # StdDev is population std; Django provides STDDEV_POP on SQLite too.
    stats = {
        row["key"]: row
        for row in own_values.order_by()
        .values("key")
        .annotate(
            count=Count("value"),
            min_value=Min("value"),
            max_value=Max("value"),
            mean_value=Avg("value"),
            std_value=StdDev("value"),
        )
    }
    # 2 and 3. the best of each source per key.
    candidates: dict[str, list[_Candidate]] = {}
    sources = [
        _best_per_key(own_values, "value", "run", goals),
        _best_per_key(child_bests, "best_value", "best_run", goals),
    ]
    for source in sources:
        for key, candidate in source:
            candidates.setdefault(key, []).append(candidate)
    best = {
        key: min(found, key=lambda candidate, key=key: candidate.rank(goal_in(goals, key)))
        for key, found in candidates.items()
    }
    # 4. the best runs' params, fresh (a param may arrive after the metric).
    params: dict[int, dict[str, str]] = {}
    for param_run_pk, name, value in Param.objects.filter(run_id__in={c.run_pk for c in best.values()}).values_list(
        "run_id", "key", "value"
    ):
        params.setdefault(param_run_pk, {})[name] = value

    computed_at = int(time.time() * 1000)
    rows = []
    for key in sorted(best):
        spread = stats.get(key, {})
        rows.append(
            RunSummary(
                run_id=run_pk,
                key=key,
                goal=goal_in(goals, key),
                best_value=best[key].value,
                best_run_id=best[key].run_pk,
                best_params=params.get(best[key].run_pk, {}),
                count=spread.get("count", 0),
                min_value=spread.get("min_value"),
                max_value=spread.get("max_value"),
                mean_value=number_or_none(spread.get("mean_value")),
                std_value=number_or_none(spread.get("std_value")),
                computed_at=computed_at,
            )
        )
    # 5. keys no child has any more (moved, deleted, only NaN left).
    RunSummary.objects.filter(run_id=run_pk).exclude(key__in=list(best)).delete()
    # 6. the rest, in one upsert.
    if rows:
        RunSummary.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["run", "key"],
            update_fields=[
                "goal",
                "best_value",
                "best_run",
                "best_params",
                "count",
                "min_value",
                "max_value",
                "mean_value",
                "std_value",
                "computed_at",
            ],
        )


def _best_per_key(rows: QuerySet, value_field: str, run_field: str, goals: dict[str, str]):
    """(key, best candidate) for each key of `rows`, ranked in the database by a window so only
    one row per key comes back, however many children there are."""
    max_keys = [key for key, goal in goals.items() if goal == Goal.MAX]
    signed = F(value_field)
    if max_keys:
        # Ranking ascending on -value puts the largest first for "max" metrics.
        signed = Case(When(key__in=max_keys, then=-F(value_field)), default=F(value_field), output_field=FloatField())
    ranked = (
        rows.order_by()
        .annotate(
            place=Window(
                RowNumber(),
                partition_by=[F("key")],
                order_by=[
                    signed.asc(),
                    F(f"{run_field}__start_time").asc(nulls_last=True),
                    F(f"{run_field}__run_id").asc(),
                ],
            )
        )
        .filter(place=1)
        .values_list("key", value_field, f"{run_field}_id", f"{run_field}__start_time", f"{run_field}__run_id")
    )
    for key, value, run_pk, start_time, run_id in ranked:
        yield key, _Candidate(value=value, run_pk=run_pk, start_time=start_time, run_id=run_id)
