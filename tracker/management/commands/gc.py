import re
import time

from django.core.management.base import BaseCommand, CommandError

from tracker.models import Experiment
from tracker.services.logged_models import deleted_logged_models_purge
from tracker.services.purge import deleted_runs_purge

_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_age(text: str) -> int:
    """`mlflow gc`'s --older-than: "30d", "1d2h", "90m", "45s" (and combinations) in ms."""
    parts = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not text.strip() or parts is None:
        raise CommandError(f"--older-than {text!r}: use days, hours, minutes, seconds, e.g. 30d or 1d12h")
    seconds = sum(int(value or 0) * _UNIT_SECONDS[unit] for value, unit in zip(parts.groups(), "dhms", strict=True))
    return seconds * 1000


class Command(BaseCommand):
    help = (
        "Remove deleted runs and deleted logged models for good, as `mlflow gc` does: their params, "
        "metrics, tags, summaries and artifacts. Runs and models that are not deleted are never touched."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", metavar="AGE", help="only runs deleted at least this long ago (30d, 1d12h)")
        parser.add_argument(
            "--experiment", type=int, action="append", metavar="ID", help="only this experiment's runs (repeatable)"
        )

    def handle(self, *args, older_than=None, experiment=None, **options):
        deleted_before = int(time.time() * 1000) - parse_age(older_than) if older_than else None
        for experiment_id in experiment or []:
            if not Experiment.objects.filter(pk=experiment_id).exists():
                raise CommandError(f"No experiment with id {experiment_id}")
        report = deleted_runs_purge(deleted_before_ms=deleted_before, experiment_ids=experiment)
        for run in report.purged:
            self.stdout.write(
                f"Removed run {run.run_id} ({run.name or 'unnamed'}, experiment {run.experiment_id}): "
                f"{run.params} params, {run.metrics} metric values, {run.tags} tags, "
                f"{run.artifact_files} artifact files."
            )
        for run_id in report.kept:
            self.stdout.write(f"Kept deleted run {run_id}: a run below it is not being removed.")
        self.stdout.write(
            self.style.SUCCESS(f"Removed {len(report.purged)} deleted run{'s' if len(report.purged) != 1 else ''}.")
        )
        models = deleted_logged_models_purge(deleted_before_ms=deleted_before, experiment_ids=experiment)
        for model in models:
            self.stdout.write(
                f"Removed logged model {model.model_id} ({model.name}, experiment {model.experiment_id}): "
                f"{model.artifact_files} artifact files."
            )
        self.stdout.write(
            self.style.SUCCESS(f"Removed {len(models)} deleted logged model{'s' if len(models) != 1 else ''}.")
        )
