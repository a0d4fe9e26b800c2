"""Refreshing stale summaries: a tree's stale runs deepest first, each claimed in its own
transaction, and the recompute of every parent (manage.py refresh_summaries)."""

import heapq
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef
from django.db.models.functions import Substr

from tracker import hot_sql
from tracker.goals import goals_of
from tracker.models import PATH_SEGMENT_WIDTH, Run, RunSummary, path_ids, path_segment
from tracker.summaries.computation import recompute_summary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TreeRefresh:
    computed: int  # runs this call computed (runs another worker claimed first are skipped)
    finished: bool  # False: writes kept landing, or a run failed, and the tree still holds stale runs
    failed: int = 0  # runs whose recompute failed (logged; they stay stale for a retry)


def refresh_tree(*, root_pk: int) -> TreeRefresh:
    """Recompute every stale summary in the tree under `root_pk` until none is left, or until
    SECONDS_PER_TASK have passed (then the task queues the tree again: see tracker/tasks.py).

    The root's `summary_queued` flag, set by whoever queued this task, stays set while it runs:
    writes landing meanwhile queue nothing, and this task's next pass sees them. So a busy tree
    has one task, not one running and another started beside it on the same runs by the next
    write. The flag is let go of only once a pass finds nothing stale, and then the tree is looked
    at once more: a write that committed before the release found the flag set and relies on
    this task; a write after it queues a task of its own."""
    goals = _GoalsByExperiment()
    computed = 0
    failed: set[int] = set()
    deadline = time.monotonic() + SECONDS_PER_TASK
    while True:
        stale = _stale_in_tree(root_pk, failed)
        if not stale:
            hot_sql.release_tree_refresh(root_pk)
            stale = _stale_in_tree(root_pk, failed)
            if not stale or not hot_sql.claim_tree_refresh(root_pk):
                return TreeRefresh(computed=computed, finished=not failed, failed=len(failed))
        elif time.monotonic() >= deadline:
            # Writes keep landing below: the task lets other trees' tasks go first, then carries
            # on, the flag still set.
            return TreeRefresh(computed=computed, finished=False, failed=len(failed))
        computed += _refresh_deepest_first(stale, goals, failed)


def _stale_in_tree(root_pk: int, failed: set[int]) -> list[tuple[int, str, int]]:
    return [row for row in hot_sql.stale_in_tree(path_segment(root_pk)) if row[0] not in failed]


# A pass refreshes what was stale when it began; writes landing meanwhile need another. A tree
# still busy after this long gives way to other trees' tasks. A time, not a number of passes: a
# pass over a small tree takes milliseconds.
SECONDS_PER_TASK = 2.0


def _refresh_deepest_first(stale: list[tuple[int, str, int]], goals: "_GoalsByExperiment", failed: set[int]) -> int:
    """Refresh the runs (pk, path, experiment id) deepest first. Refreshing a run makes its parent
    stale, so the parent joins the queue, at its depth: a root is done in the same pass as the
    leaves' parents below it, after all of them. A run whose recompute fails is logged, added to
    `failed` and left stale (its transaction rolled back), and the others carry on: one bad run
    used to stop its whole tree's refresh for good, silently."""
    queue = [(-len(path_ids(path)), run_pk, path, experiment_id) for run_pk, path, experiment_id in stale]
    heapq.heapify(queue)
    seen = {run_pk for run_pk, _, _ in stale}
    computed = 0
    while queue:
        negative_depth, run_pk, path, experiment_id = heapq.heappop(queue)
        ids = path_ids(path)
        parent_pk = ids[-2] if len(ids) > 1 else None
        if run_pk in failed:
            continue
        try:
            if not refresh_stale_run(run_pk, parent_pk=parent_pk, goals=goals[experiment_id]):
                continue
        except DatabaseError:
            logger.exception("Summary refresh of run %s failed; it stays stale and is retried", run_pk)
            failed.add(run_pk)
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
            hot_sql.lock_runs([run_pk, parent_pk])
        # With only_if_stale, the claim: a worker that got here first leaves 0 rows to update. It
        # commits with the new summary, so a worker killed in between leaves the run stale for the
        # repair.
        if not hot_sql.claim_summary(run_pk, only_if_stale=only_if_stale):
            return False
        recompute_summary(run_pk, goals=goals)
        if parent_pk is not None:
            # The parent's summary is built on this one. It may have been recomputed a moment ago
            # from this run's old summary by another worker (whose list was taken before this run
            # went stale), so it is stale again from this commit on, whatever it says now.
            hot_sql.mark_stale(parent_pk)
    return True


def stale_tree_roots() -> list[int]:
    """The root pk of every tree that still holds a stale summary (for the periodic repair)."""
    root_segments = (
        Run.objects.filter(summary_stale=True)
        .annotate(root_segment=Substr("path", 1, PATH_SEGMENT_WIDTH))
        .order_by()
        .values_list("root_segment", flat=True)
        .distinct()
    )
    return sorted({int(segment) for segment in root_segments if segment})


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
