"""The experiments page's read."""

from django.db.models import BigIntegerField, Count, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce, Greatest

from tracker.models import ACTIVE, Experiment, Run


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
