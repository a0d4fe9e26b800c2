"""What makes a summary stale: marking the parents of a changed run (or a whole experiment)
stale inside the write's transaction. Queueing the refresh is tracker/tasks.py's job."""

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from tracker import hot_sql
from tracker.models import Experiment, Run, path_ids


def params_change_summaries(*, run: Run) -> bool:
    """Whether params logged on `run` change a summary: only if it is some parent's best run,
    whose summary shows its params. Most params arrive before a run's metrics (so before it can
    be anyone's best). Asked before the write, so that a write that needs no refresh is one
    statement. (A refresh that makes the run best while the param is being written may miss it
    until the tree's next refresh, as it could when this was asked just after the write.)"""
    return run.parent_id is not None and hot_sql.is_some_parents_best_run(run.pk)


def mark_parents_stale(*, run: Run, old_parent_pk: int | None = None) -> list[int]:
    """Mark `run`'s parent (and its old parent, after a move) stale; return the pks of their
    trees' roots, for tracker/tasks.py to queue a refresh of after commit. Only the parent: its
    refresh marks the grandparent in turn, so the write locks one row rather than a whole chain
    every writer of the tree would queue on."""
    parents = {}  # parent pk → its tree's root pk
    if run.parent_id is not None:
        parents[run.parent_id] = path_ids(run.path)[0]
    if old_parent_pk is not None:
        old_parent_path = Run.objects.filter(pk=old_parent_pk).values_list("path", flat=True).first()
        if old_parent_path:
            parents[old_parent_pk] = path_ids(old_parent_path)[0]
    if not parents:
        return []
    if len(parents) == 1:
        # The hot path (every logged metric of a child): one row, so no lock order to keep.
        hot_sql.mark_stale(next(iter(parents)))
    else:
        _mark_stale(Run.objects.filter(pk__in=parents))
    return list(parents.values())


def mark_experiment_stale(*, experiment: Experiment) -> list[int]:
    """Mark every parent in `experiment` stale (its goal for a metric changed); return its trees' root pks."""
    has_children = Exists(Run.objects.filter(parent=OuterRef("pk")))
    _mark_stale(Run.objects.filter(has_children, experiment=experiment))
    roots = Run.objects.filter(has_children, experiment=experiment, parent__isnull=True)
    return list(roots.values_list("pk", flat=True))


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
