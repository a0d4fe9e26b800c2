from pathlib import Path

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from tracker import importing
from tracker.errors import TrackingError
from tracker.importing.artifacts import (
    ArtifactCopyCounts,
    ArtifactSource,
    models_artifacts_copy,
    runs_artifacts_copy,
)
from tracker.models import LoggedModel, Run


class Command(BaseCommand):
    help = (
        "Import experiments and runs from MLflow: a tracking server (http://host:5000), an MLflow "
        "database (sqlite:///mlflow.db, postgresql://...) or an mlruns folder. Run ids, parent links, "
        "params, tags, whole metric histories, datasets and logged models are kept; running it again "
        "adds what is new and changes nothing Runtree holds (but for runs that have ended since)."
    )

    # How many skipped runs are named one by one; the rest are counted.
    NAMED_CLASHES = 5

    def add_arguments(self, parser):
        parser.add_argument("source", help="a tracking server URL, a database URL, or an mlruns folder")
        parser.add_argument(
            "--experiment",
            action="append",
            dest="experiments",
            metavar="NAME",
            help="import only this experiment (repeat for more); default: all, deleted ones included",
        )
        parser.add_argument(
            "--with-artifacts",
            action="store_true",
            help="also copy each run's artifacts and each logged model's files (an mlruns folder's, "
            "a server's proxied artifacts) into Runtree's artifact store",
        )
        parser.add_argument(
            "--artifacts-destination",
            metavar="FOLDER",
            type=Path,
            help="with --with-artifacts from a database: the folder the source's `mlflow server` was started "
            "with as --artifacts-destination, where its runs' mlflow-artifacts:/<path> files are (FOLDER/<path>)",
        )

    def handle(
        self,
        *args,
        source,
        experiments=None,
        with_artifacts=False,
        artifacts_destination=None,
        verbosity=1,
        **options,
    ):
        location = source
        if artifacts_destination is not None and not artifacts_destination.is_dir():
            raise CommandError(f"Nothing imported. --artifacts-destination {artifacts_destination}: no such folder")
        counts = importing.ImportCounts()
        copied = ArtifactCopyCounts()
        current = None
        try:
            with importing.open_source(source) as mlflow_source:
                source = mlflow_source.description  # without a password, for the summary
                artifact_source = ArtifactSource(mlflow_source.tracking_uri, artifacts_destination)
                chosen = importing.select_experiments(mlflow_source.experiments(), experiments)
                run_counts = [mlflow_source.run_count(experiment) for experiment in chosen]
                with tqdm(total=sum(run_counts), unit="run", desc="import", disable=verbosity < 1) as progress:
                    for current in chosen:
                        artifact_uris: dict[str, str] = {}
                        model_uris: dict[str, str] = {}
                        counts += importing.experiment_import(
                            experiment=current,
                            run_chunks=_noting_artifact_uris(mlflow_source, current, artifact_uris),
                            model_chunks=_noting_model_uris(mlflow_source, current, model_uris),
                            on_progress=progress.update,
                        )
                        if with_artifacts:
                            runs = Run.objects.filter(experiment__name=current.name, run_id__in=list(artifact_uris))
                            runs_artifacts_copy(
                                runs=list(runs),
                                source_uris=artifact_uris,
                                source=artifact_source,
                                counts=copied,
                            )
                            models = LoggedModel.objects.filter(
                                experiment__name=current.name, model_id__in=list(model_uris)
                            )
                            models_artifacts_copy(
                                models=list(models),
                                source_uris=model_uris,
                                source=artifact_source,
                                counts=copied,
                            )
        except (importing.SourceError, TrackingError) as exc:
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
        if with_artifacts:
            self.stdout.write(
                f"Artifacts: {copied.files} files ({copied.bytes} bytes) of {copied.runs} runs "
                f"and {copied.models} logged models copied."
            )
            for run_id, problem in copied.failed.items():
                self.stdout.write(f"Run {run_id}: its artifacts could not be copied ({problem}).")
            for model_id, problem in copied.failed_models.items():
                self.stdout.write(f"Logged model {model_id}: its files could not be copied ({problem}).")
            if copied.runs_behind_server or copied.models_behind_server:
                self.stdout.write(self._behind_server(copied))
        if counts.runs_elsewhere:
            self.stdout.write(self._clashes(counts.runs_elsewhere))
        if counts.logged_models_elsewhere:
            self.stdout.write(
                f"{counts.logged_models_elsewhere} logged models were skipped: Runtree holds their model ids "
                "in another experiment."
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
            except (importing.SourceError, TrackingError) as exc:
                raise CommandError(f"The runs were imported; {config.verbose_name} was not: {exc}") from None

    @staticmethod
    def _behind_server(copied: ArtifactCopyCounts) -> str:
        return (
            f"The artifacts of {copied.runs_behind_server} runs and the files of {copied.models_behind_server} "
            "logged models were not copied: they live behind a tracking server (their URIs are "
            "mlflow-artifacts:/...), which a database or folder import cannot read. Run the import again "
            "with --artifacts-destination FOLDER, the folder that server was started with as "
            "--artifacts-destination, or import from the running server: "
            "import_mlflow http://host:5000 --with-artifacts."
        )

    @classmethod
    def _clashes(cls, clashes: list[tuple[str, str]]) -> str:
        named = ", ".join(run_id for run_id, _ in clashes[: cls.NAMED_CLASHES])
        if len(clashes) > cls.NAMED_CLASHES:
            named += f" and {len(clashes) - cls.NAMED_CLASHES} more"
        holders = ", ".join(repr(name) for name in sorted({name for _, name in clashes}))
        return (
            f"{len(clashes)} runs were skipped: Runtree holds their run ids in another experiment ({holders}): {named}."
        )

    @staticmethod
    def _summary(source: str, counts: importing.ImportCounts) -> str:
        experiments = counts.experiments_created + counts.experiments_existing
        return (
            f"Imported from {source}: {experiments} experiments ({counts.experiments_created} new); "
            f"runs: {counts.runs_created} new, {counts.runs_existing} already here "
            f"({counts.runs_updated} updated); {counts.params} params, {counts.tags} tags, "
            f"{counts.metric_points} metric points, {counts.dataset_inputs} dataset inputs, "
            f"{counts.logged_models} logged models."
        )


def _noting_model_uris(source, experiment, model_uris: dict[str, str]):
    """The source's logged models, chunk by chunk, noting where each model's files are read from."""
    for chunk in source.logged_models(experiment):
        model_uris.update({model.model_id: source.model_artifact_uri(experiment, model) for model in chunk})
        yield chunk


def _noting_artifact_uris(source, experiment, artifact_uris: dict[str, str]):
    """The source's runs, chunk by chunk, noting where each run's artifacts are read from."""
    for chunk in source.runs(experiment):
        artifact_uris.update({run.run_id: source.artifact_uri(experiment, run) for run in chunk})
        yield chunk
