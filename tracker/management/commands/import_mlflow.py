from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from tracker import importer
from tracker.errors import TrackingError


class Command(BaseCommand):
    help = (
        "Import experiments and runs from MLflow: a tracking server (http://host:5000), an MLflow "
        "database (sqlite:///mlflow.db, postgresql://...) or an mlruns folder. Run ids, parent links, "
        "params, tags and whole metric histories are kept; running it again adds only what is new."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="a tracking server URL, a database URL, or an mlruns folder")
        parser.add_argument(
            "--experiment",
            action="append",
            dest="experiments",
            metavar="NAME",
            help="import only this experiment (repeat for more); default: all, deleted ones included",
        )

    def handle(self, *args, source, experiments=None, verbosity=1, **options):
        location = source
        counts = importer.ImportCounts()
        current = None
        try:
            with importer.open_source(source) as mlflow_source:
                source = mlflow_source.description  # without a password, for the summary
                chosen = importer.select_experiments(mlflow_source.experiments(), experiments)
                run_counts = [mlflow_source.run_count(experiment) for experiment in chosen]
                with tqdm(total=sum(run_counts), unit="run", desc="import", disable=verbosity < 1) as progress:
                    for current in chosen:
                        counts += importer.experiment_import(
                            experiment=current, run_chunks=mlflow_source.runs(current), on_progress=progress.update
                        )
        except (importer.SourceError, TrackingError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            if current is None:
                raise CommandError(f"Nothing imported. {message}") from None
            if counts.experiments_created or counts.experiments_existing:
                self.stdout.write(self._summary(source, counts))
            raise CommandError(
                f"Stopped at experiment {current.name!r}, of which nothing was written: {message}. "
                "The experiments before it were imported whole; run the command again to finish."
            ) from None
        self.stdout.write(self.style.SUCCESS(self._summary(source, counts)))
        if not experiments:
            self._import_into_other_apps(location)
        if counts.params_kept:
            self.stdout.write(
                f"{counts.params_kept} params have a different value in the source than in Runtree; "
                "Runtree's were kept (params are write-once)."
            )
        if counts.runs_elsewhere:
            self.stdout.write(
                f"{counts.runs_elsewhere} runs were skipped: Runtree holds their run ids in another experiment."
            )

    def _import_into_other_apps(self, location: str) -> None:
        """What other apps keep of an MLflow source (the registry's models), through an
        `import_from_mlflow(location)` hook on their AppConfig: tracker knows no other app."""
        for config in apps.get_app_configs():
            hook = getattr(config, "import_from_mlflow", None)
            if hook is None:
                continue
            try:
                self.stdout.write(self.style.SUCCESS(hook(location)))
            except (importer.SourceError, TrackingError) as exc:
                raise CommandError(f"The runs were imported; {config.verbose_name} was not: {exc}") from None

    @staticmethod
    def _summary(source: str, counts: importer.ImportCounts) -> str:
        experiments = counts.experiments_created + counts.experiments_existing
        return (
            f"Imported from {source}: {experiments} experiments ({counts.experiments_created} new); "
            f"runs: {counts.runs_created} new, {counts.runs_existing} already here "
            f"({counts.runs_updated} updated); {counts.params} params, {counts.tags} tags, "
            f"{counts.metric_points} metric points."
        )
