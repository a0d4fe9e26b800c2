"""What a viewer does to runs from the pages: tag, untag, delete or restore a selection of runs;
rename a run and write its description. Each is one transaction over the rules the MLflow API
enforces (tracker/services/runs.py), so a page can store nothing the API would refuse, and
a refused run leaves none of the selection changed."""

from collections.abc import Sequence

from django.db import transaction

from tracker.constants import NOTE_TAG
from tracker.models import ACTIVE, DELETED, Run, RunTag
from tracker.services.runs import run_delete_tag, run_set_lifecycle, run_set_tag, run_update


def runs_tag(*, runs: Sequence[Run], key: str, value: str) -> int:
    """Set tag `key` = `value` on every run; the number of runs tagged."""
    with transaction.atomic():
        for run in runs:
            run_set_tag(run=run, key=key, value=value)
    return len(runs)


def runs_untag(*, runs: Sequence[Run], key: str) -> int:
    """Remove tag `key` from the runs that have it; the number of runs it was removed from."""
    having = set(RunTag.objects.filter(run__in=runs, key=key).values_list("run_id", flat=True))
    with transaction.atomic():
        for run in runs:
            if run.pk in having:
                run_delete_tag(run=run, key=key)
    return len(having)


def runs_set_lifecycle(*, runs: Sequence[Run], stage: str) -> int:
    """Delete (soft, as MLflow) or restore the runs not already so; the number changed."""
    if stage not in (ACTIVE, DELETED):
        raise ValueError(f"stage must be {ACTIVE!r} or {DELETED!r}, got {stage!r}")
    changing = [run for run in runs if run.lifecycle_stage != stage]
    with transaction.atomic():
        for run in changing:
            run_set_lifecycle(run=run, stage=stage)
    return len(changing)


def run_rename_and_describe(*, run: Run, name: str, description: str) -> Run:
    """Give `run` a new name (blank keeps it) and description, MLflow's `mlflow.note.content`
    tag (what `mlflow.start_run(description=...)` sets); a blank description removes it."""
    with transaction.atomic():
        if name.strip() and name.strip() != run.name:
            run_update(run=run, name=name.strip())
        if description.strip():
            run_set_tag(run=run, key=NOTE_TAG, value=description)
        elif RunTag.objects.filter(run=run, key=NOTE_TAG).exists():
            run_delete_tag(run=run, key=NOTE_TAG)
    return run
