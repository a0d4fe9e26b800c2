"""Celery tasks, and the queueing beside them: the write services queue a task after commit, the
task calls tracker/summaries/ (HackSoft's recipe: services queue tasks, tasks call services, so
no import runs back up). Each task takes an id (or nothing) and is safe to run twice.

Task names (tracker.tasks.refresh_tree, tracker.tasks.repair_stale_summaries,
tracker.tasks.refresh_importance, tracker.tasks.refit_stale_importance,
tracker.tasks.refresh_bands, tracker.tasks.refresh_settled_bands) are what beat's schedule and
queued messages name: keep them.
"""

import logging
import time
from collections.abc import Iterable

from celery import shared_task
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnavailable

from tracker import hot_sql
from tracker.models import Experiment, Run
from tracker.summaries import bands, importance, refresh, staleness

logger = logging.getLogger(__name__)


# A refresh with runs that failed (a lost connection, a deadlock) is retried after 2, 4, 8 ...
# seconds, at most this many times; then the periodic repair takes over.
REFRESH_MAX_RETRIES = 6


# acks_late: a worker killed mid-task leaves the message to be delivered again; the runs it had
# not finished are still stale in any case (see summaries.refresh.refresh_stale_run), so the
# repair finds them.
@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=REFRESH_MAX_RETRIES)
def refresh_tree(self, root_pk: int) -> int:
    """Recompute the stale best-child summaries of the run tree under `root_pk`, then queue the
    refit of the param importance of its parents whose summaries changed (at most once a
    REFIT_INTERVAL_MS per parent: a running sweep refreshes its summary every half second)."""
    result = refresh.refresh_tree(root_pk=root_pk)
    if result.failed:
        logger.warning("Summary refresh of tree %s: %d run(s) failed and stay stale", root_pk, result.failed)
        if not self.request.is_eager and self.request.retries < REFRESH_MAX_RETRIES:
            raise self.retry(countdown=2 ** (self.request.retries + 1))
        # In-process (no broker) a retry would make the write wait: the next write into the tree,
        # or the repair after the write (maybe_repair_in_process), runs it again.
        return result.computed
    if not result.finished:
        # Writes keep landing below: let other trees' tasks go first, then carry on. The tree's
        # flag is still this task's, so the next one is queued whatever it says, and at once:
        # the writes it will read have waited long enough.
        queue_tree_refresh(root_pk, even_if_queued=True, at_once=True)
    queue_importance_refits(root_pk=root_pk, min_age_ms=importance.REFIT_INTERVAL_MS)
    return result.computed


@shared_task(ignore_result=True)
def repair_stale_summaries() -> int:
    """Re-queue every tree that still has stale summaries (beat runs this every 30 s); return how many."""
    roots = refresh.stale_tree_roots()
    for root_pk in roots:
        queue_tree_refresh(root_pk, even_if_queued=True)
    return len(roots)


@shared_task(acks_late=True, ignore_result=True)
def refresh_importance(parent_pk: int) -> int:
    """Refit the param importance of the sweep under `parent_pk` (tracker/summaries/importance.py)."""
    return importance.refresh_importance(parent_pk=parent_pk)


@shared_task(ignore_result=True)
def refit_stale_importance() -> int:
    """Queue the refit of every parent whose summary changed since its last fit (beat, every minute)."""
    return queue_importance_refits()


@shared_task(acks_late=True, ignore_result=True)
def refresh_bands(parent_pk: int) -> int:
    """Aggregate and keep the band charts' data of the sweep under `parent_pk` (tracker/summaries/bands.py)."""
    return bands.refresh_bands(parent_pk=parent_pk)


@shared_task(ignore_result=True)
def refresh_settled_bands() -> int:
    """Queue the bands of every parent whose summaries settled since its bands were kept (beat)."""
    parents = bands.stale_band_parents()
    for parent_pk in parents:
        refresh_bands.delay(parent_pk)
    return len(parents)


def queue_importance_refits(*, root_pk: int | None = None, min_age_ms: int = 0) -> int:
    """Queue a refit for each parent (under `root_pk`, or anywhere) whose summary is newer than
    its importance, and whose last fit is at least `min_age_ms` old; return how many.

    Only for a worker: in-process (no broker) a fit would run inside the write or the import
    that refreshed the summary, ~0.3-1 s a parent (`import_mlflow` of 1,000 sweeps took 1,196 s
    instead of 235). There the importance waits for a worker (the beat's refit finds it stale),
    and the page says so."""
    if in_process():
        return 0
    parents = importance.stale_parents(root_pk=root_pk, min_age_ms=min_age_ms)
    for parent_pk in parents:
        refresh_importance.delay(parent_pk)
    return len(parents)


# --- queueing (the write services call these inside their transaction) --------------------------


def mark_parents_stale_and_queue(*, run: Run, old_parent_pk: int | None = None) -> None:
    """`run` changed (its latest metrics, a best run's params, its lifecycle, its place): mark
    its parent (and old parent) stale and refresh their trees after commit."""
    queue_refresh_after_commit(staleness.mark_parents_stale(run=run, old_parent_pk=old_parent_pk))


def mark_experiment_stale_and_queue(*, experiment: Experiment) -> None:
    """A goal of `experiment` changed, or an import rewrote it: mark every parent stale and
    refresh every tree after commit."""
    queue_refresh_after_commit(staleness.mark_experiment_stale(experiment=experiment))


def queue_refresh_after_commit(root_pks: Iterable[int]) -> None:
    """Queue a refresh of each tree once the current transaction commits (at once outside one):
    a worker must never look before the write it is meant to see is visible."""
    for root_pk in sorted(set(root_pks)):
        # robust: the write has committed; a failing refresh must not answer 5xx and be retried.
        # (A lambda, not a partial: Django names the failed callback by its __qualname__.)
        transaction.on_commit(lambda pk=root_pk: queue_tree_refresh(pk), robust=True)
    if in_process():
        transaction.on_commit(maybe_repair_in_process, robust=True)


def in_process() -> bool:
    """No broker: tasks run right here, in the request that queued them (the embedded default)."""
    return refresh_tree.app.conf.task_always_eager and not settings.RUNTREE_SUMMARY_REFRESH_DELAY_MS


# In-process (no broker, so no beat): the last time this process looked for stale trees.
_last_in_process_repair = [time.monotonic()]


def maybe_repair_in_process() -> int:
    """The periodic repair, for the embedded default (no beat): at most every
    RUNTREE_SUMMARY_REPAIR_SECONDS, after a write, refresh every tree still holding stale runs,
    whatever its claim says: a refresh that failed, or a process killed between claiming a tree
    and refreshing it (which left `summary_queued` set, so no later write refreshed the tree
    again). One query when there is nothing to do."""
    now = time.monotonic()
    if now - _last_in_process_repair[0] < settings.RUNTREE_SUMMARY_REPAIR_SECONDS:
        return 0
    _last_in_process_repair[0] = now
    return repair_stale_summaries()


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


def queue_tree_refresh(root_pk: int, *, even_if_queued: bool = False, at_once: bool = False) -> bool:
    """Queue `refresh_tree` for the tree under `root_pk`, unless one is queued or running already.

    The conditional update is the claim: of many writers finishing at once, one sees 1 row and
    queues; the others see 0. The task lets go of the flag when it finds nothing left to refresh
    (summaries.refresh.refresh_tree). The repair passes `even_if_queued`, because a task lost
    with a killed worker leaves the flag set; a task giving way to other trees passes it with
    `at_once` (no coalescing delay)."""
    delay = 0 if at_once else settings.RUNTREE_SUMMARY_REFRESH_DELAY_MS / 1000
    if delay and not even_if_queued and _queued_here_within(root_pk, delay):
        return False  # this process's queued task has not started yet: it will see this write
    claimed = hot_sql.claim_tree_refresh(root_pk)
    if not (claimed or even_if_queued):
        return False
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
