from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from tracker.models import Experiment
from tracker.summaries import refresh as summary_refresh


class Command(BaseCommand):
    help = (
        "Recompute every best-child summary now (or one experiment's), deepest runs first. "
        "Safe beside running workers: each run is recomputed from the data under its row lock."
    )

    def add_arguments(self, parser):
        parser.add_argument("--experiment", type=int, metavar="ID", help="only this experiment's runs")

    def handle(self, *args, experiment=None, verbosity=1, **options):
        if experiment is not None and not Experiment.objects.filter(pk=experiment).exists():
            raise CommandError(f"No experiment with id {experiment}")

        def progress(rows, total):
            return tqdm(rows, total=total, unit="run", desc="summaries", disable=verbosity < 1)

        count = summary_refresh.recompute_all(experiment_id=experiment, progress=progress)
        self.stdout.write(self.style.SUCCESS(f"Recomputed the summaries of {count} runs."))
