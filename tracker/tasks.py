"""Celery tasks: each takes an id (or nothing), calls tracker/summaries.py, and is safe to run twice."""

from celery import shared_task

from tracker import importance, summaries


# acks_late: a worker killed mid-task leaves the message to be delivered again; the runs it had
# not finished are still stale in any case (see summaries.refresh_stale_run), so the repair finds them.
@shared_task(acks_late=True, ignore_result=True)
def refresh_tree(root_pk: int) -> int:
    """Recompute the stale best-child summaries of the run tree under `root_pk`, then queue the
    refit of the param importance of its parents whose summaries changed (at most once a
    REFIT_INTERVAL_MS per parent: a running sweep refreshes its summary every half second)."""
    computed = summaries.refresh_tree(root_pk=root_pk)
    queue_importance_refits(root_pk=root_pk, min_age_ms=importance.REFIT_INTERVAL_MS)
    return computed


@shared_task(ignore_result=True)
def repair_stale_summaries() -> int:
    """Re-queue every tree that still has stale summaries (beat runs this every 30 s)."""
    return summaries.requeue_stale_trees()


@shared_task(acks_late=True, ignore_result=True)
def refresh_importance(parent_pk: int) -> int:
    """Refit the parameter importance of the sweep under `parent_pk` (tracker/importance.py)."""
    return importance.refresh_importance(parent_pk=parent_pk)


@shared_task(ignore_result=True)
def refit_stale_importance() -> int:
    """Queue the refit of every parent whose summary changed since its last fit (beat, every minute)."""
    return queue_importance_refits()


def queue_importance_refits(*, root_pk: int | None = None, min_age_ms: int = 0) -> int:
    parents = importance.stale_parents(root_pk=root_pk, min_age_ms=min_age_ms)
    for parent_pk in parents:
        refresh_importance.delay(parent_pk)
    return len(parents)
