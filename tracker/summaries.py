"""Best-child summaries: which descendant of a parent is best for each metric.

Writes mark summaries stale here (through tracker/hierarchy_events.py); tracker/tasks.py
recomputes them after commit.
"""

from tracker.models import Experiment, Run, path_ids


def mark_ancestors_stale(*, run: Run, also_pk: int | None = None) -> None:
    """Mark every ancestor of `run` (and `also_pk`'s whole ancestor chain) stale: one UPDATE."""
    pks = set(path_ids(run.path)[:-1])
    if also_pk is not None:
        old_parent_path = Run.objects.filter(pk=also_pk).values_list("path", flat=True).first()
        pks.update(path_ids(old_parent_path or ""))
    if pks:
        Run.objects.filter(pk__in=pks).update(summary_stale=True)


def mark_experiment_stale(*, experiment: Experiment) -> None:
    """Mark every parent in `experiment` stale (its goal for a metric changed)."""
    parents = Run.objects.filter(experiment=experiment, children__isnull=False).values("pk")
    Run.objects.filter(pk__in=parents).update(summary_stale=True)
