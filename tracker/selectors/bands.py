"""Reads for "compare sweeps": the parents named in the URL, the parents among runs picked in the
tree, and the children they compare. Their bands are tracker/summaries/bands.py's."""

from django.db.models import QuerySet

from tracker.models import Run


def sweep_parents(run_ids) -> list[Run]:
    """The runs named by `run_ids`, in that order, as parents of sweeps (one query)."""
    found = {run.run_id: run for run in Run.objects.filter(run_id__in=list(run_ids))}
    return [found[run_id] for run_id in run_ids if run_id in found]


def parents_among(runs: QuerySet, *, limit: int) -> list[str]:
    """Run ids of the runs in `runs` that have active children, at most `limit` (one query):
    a selection of parents in the tree can be compared as sweeps."""
    children = Run.objects.filter(parent__in=runs.order_by().values("pk")).active()
    return list(children.order_by("parent__run_id").values_list("parent__run_id", flat=True).distinct()[:limit])


def sweep_children(run_ids) -> QuerySet:
    """The active children of the runs named by `run_ids`: what "compare sweeps" compares."""
    return Run.objects.filter(parent__run_id__in=list(run_ids)).active()
