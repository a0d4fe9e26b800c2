"""Removing deleted runs for good (`manage.py gc`, as `mlflow gc`): with their params, metrics,
tags, summaries and artifacts. A run that is not deleted is never touched: a deleted run is
removed only with its whole subtree, so one with a descendant that is not (yet) to be removed
stays, and the command says so."""

from dataclasses import dataclass, field

from django.db import transaction

from tracker import tasks
from tracker.models import DELETED, Metric, Param, Run, RunTag
from tracker.services.artifacts import artifact_tree_delete


@dataclass(frozen=True)
class PurgedRun:
    run_id: str
    name: str
    experiment_id: int
    params: int
    metrics: int
    tags: int
    artifact_files: int


@dataclass
class PurgeReport:
    purged: list[PurgedRun] = field(default_factory=list)
    # Deleted runs left in place: a descendant of theirs is not to be removed.
    kept: list[str] = field(default_factory=list)


def deleted_runs_purge(*, deleted_before_ms: int | None = None, experiment_ids: list[int] | None = None) -> PurgeReport:
    """Remove the deleted runs (deleted before `deleted_before_ms`, if given; of
    `experiment_ids`, if given), deepest first."""
    candidates = Run.objects.filter(lifecycle_stage=DELETED)
    if deleted_before_ms is not None:
        candidates = candidates.filter(deleted_time__lt=deleted_before_ms)
    if experiment_ids:
        candidates = candidates.filter(experiment_id__in=experiment_ids)
    runs = list(candidates.order_by("-depth", "pk"))
    removable = {run.pk for run in runs}
    report = PurgeReport()
    for run in runs:
        subtree = set(Run.objects.subtree_of(run).values_list("pk", flat=True))
        if not subtree <= removable:
            report.kept.append(run.run_id)
            removable -= {run.pk}  # its ancestors' subtrees include it: they stay too
            continue
        report.purged.append(_purge(run))
    return report


def _purge(run: Run) -> PurgedRun:
    # The files first: if removing them fails, the run is still there, deleted, to purge again.
    artifact_files = artifact_tree_delete(name=f"{run.experiment_id}/{run.run_id}")
    counts = {
        "params": Param.objects.filter(run=run).count(),
        "metrics": Metric.objects.filter(run=run).count(),
        "tags": RunTag.objects.filter(run=run).count(),
    }
    with transaction.atomic():
        # A parent's summary never counted the deleted run; marking it stale keeps the rule
        # "a change below a parent refreshes it" without knowing that here.
        tasks.mark_parents_stale_and_queue(run=run)
        run.delete()
    return PurgedRun(run.run_id, run.name, run.experiment_id, artifact_files=artifact_files, **counts)
