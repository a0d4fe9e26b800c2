"""Reading through mlflow's own client: the base of the tracking-server and file-store readers."""

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from tracker.importing.source import (
    MlflowSource,
    SourceError,
    SourceExperiment,
    SourceLoggedModel,
    SourceRun,
    chunks,
    creation_order,
    one_line,
)
from tracker.models import ACTIVE
from tracker.services import KeyValue, MetricInput
from tracker.services.datasets import DatasetInput
from tracker.services.logged_models import ModelOutput


class ClientSource(MlflowSource):
    """A source read through mlflow's own client: a tracking server's REST API or an mlruns
    folder. A run's history costs one call per metric key, so chunks are smaller.

    Logged models are what the client's search_logged_models lists: it hides deleted ones (a
    reader that can find them otherwise adds them in `_deleted_logged_models`), and a model's
    metrics are the points the store hands it (an mlruns folder: the latest per key and dataset)."""

    chunk_size = 100
    # MLflow's SQL store leaves the models a run used out of search_runs (get_run has them).
    lists_model_inputs = True
    # How many of a chunk's runs are read at once (their histories, their models): 1 reads them
    # in turn. A tracking server answers each call in a round trip, so it reads more.
    read_threads = 1

    def __init__(self, tracking_uri: str, description: str):
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from mlflow.tracking import MlflowClient

        self.description = description
        self.tracking_uri = tracking_uri
        with self._reading():
            self.client = MlflowClient(tracking_uri=tracking_uri)
        self._listed: dict[str, list] = {}
        self._readers = ThreadPoolExecutor(self.read_threads, "import-read") if self.read_threads > 1 else None

    def close(self) -> None:
        readers = getattr(self, "_readers", None)  # None too when __init__ failed before it
        if readers is not None:
            readers.shutdown(cancel_futures=True)

    @contextlib.contextmanager
    def _reading(self):
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from mlflow.exceptions import MlflowException

        try:
            yield
        except (MlflowException, OSError) as exc:
            raise SourceError(f"Reading {self.description} failed: {one_line(exc)}") from None

    def experiments(self) -> list[SourceExperiment]:
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from mlflow.entities import ViewType

        found, page_token = [], None
        while True:
            with self._reading():
                page = self.client.search_experiments(view_type=ViewType.ALL, max_results=1000, page_token=page_token)
            found.extend(
                SourceExperiment(
                    source_id=experiment.experiment_id,
                    name=experiment.name,
                    artifact_location=experiment.artifact_location or "",
                    lifecycle_stage=experiment.lifecycle_stage,
                    creation_time=experiment.creation_time,
                    last_update_time=experiment.last_update_time,
                    tags=dict(experiment.tags),
                )
                for experiment in page
            )
            page_token = page.token
            if not page_token:
                return found

    def run_count(self, experiment: SourceExperiment) -> int:
        return len(self._list_runs(experiment))

    def _list_runs(self, experiment: SourceExperiment) -> list:
        # Listing holds each run's params and tags in memory until its chunk is written: the
        # price of knowing the total (and that the source answers) before writing anything.
        from mlflow.entities import ViewType

        if experiment.source_id not in self._listed:
            listed, page_token = [], None
            while True:
                with self._reading():
                    page = self.client.search_runs(
                        [experiment.source_id], run_view_type=ViewType.ALL, max_results=1000, page_token=page_token
                    )
                listed.extend(page)
                page_token = page.token
                if not page_token:
                    break
            listed.sort(key=lambda run: creation_order(run.info.start_time, run.info.run_id))
            self._listed[experiment.source_id] = listed
        return self._listed[experiment.source_id]

    def runs(self, experiment: SourceExperiment) -> Iterator[list[SourceRun]]:
        for chunk in chunks(self._list_runs(experiment), self.chunk_size):
            with self._reading():  # a failed read raises here, from whichever thread made it
                source_runs = list(
                    self._readers.map(self._source_run, chunk) if self._readers else map(self._source_run, chunk)
                )
            yield source_runs
        self._listed.pop(experiment.source_id, None)

    def _source_run(self, run) -> SourceRun:
        info, data = run.info, run.data
        history = [
            MetricInput(point.key, point.value, point.timestamp, point.step)
            for key in sorted(data.metrics)
            for point in self.client.get_metric_history(info.run_id, key)
        ]
        inputs = run.inputs if self.lists_model_inputs else self.client.get_run(info.run_id).inputs
        return SourceRun(
            run_id=info.run_id,
            name=info.run_name or "",
            user_id=info.user_id or "",
            status=info.status,
            start_time=info.start_time,
            end_time=info.end_time,
            lifecycle_stage=info.lifecycle_stage,
            artifact_uri=info.artifact_uri or "",
            params=dict(data.params),
            tags={key: value or "" for key, value in data.tags.items()},
            metrics=history,
            datasets=[_dataset_input(given) for given in (run.inputs.dataset_inputs if run.inputs else [])],
            model_outputs=[
                ModelOutput(output.model_id, output.step or 0)
                for output in (run.outputs.model_outputs if run.outputs else [])
            ],
            model_inputs=[given.model_id for given in (inputs.model_inputs if inputs else [])],
        )

    def logged_models(self, experiment: SourceExperiment) -> Iterator[list[SourceLoggedModel]]:
        listed, page_token = set(), None
        while True:
            with self._reading():
                page = self._logged_models_page(experiment, page_token)
            if page is None:
                return
            listed.update(model.model_id for model in page)
            yield [source_logged_model(model) for model in page]
            page_token = page.token
            if not page_token:
                break
        with self._reading():
            deleted = self._deleted_logged_models(experiment, listed)
        yield from chunks(deleted, self.chunk_size)

    def _logged_models_page(self, experiment: SourceExperiment, page_token: str | None):
        """A page of the experiment's models; None from a server older than MLflow 3, which has
        no logged models (nor the endpoint that lists them)."""
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from mlflow.exceptions import MlflowException

        try:
            return self.client.search_logged_models(
                [experiment.source_id], max_results=self.chunk_size, page_token=page_token
            )
        except MlflowException as exc:
            if exc.error_code == "ENDPOINT_NOT_FOUND":
                return None
            raise

    def _deleted_logged_models(self, experiment: SourceExperiment, listed: set[str]) -> list[SourceLoggedModel]:
        """The experiment's deleted models, which mlflow's client neither lists nor gets: none
        through a tracking server's REST API."""
        return []


def _dataset_input(given) -> DatasetInput:
    """A dataset input as mlflow's client reads it (mlflow.entities.DatasetInput)."""
    dataset = given.dataset
    return DatasetInput(
        name=dataset.name,
        digest=dataset.digest,
        source_type=dataset.source_type,
        source=dataset.source or "",
        schema=dataset.schema or "",
        profile=dataset.profile or "",
        tags=[KeyValue(tag.key, tag.value or "") for tag in given.tags],
    )


def source_logged_model(model, lifecycle_stage: str | None = None) -> SourceLoggedModel:
    """A logged model as mlflow's client reads it (mlflow.entities.LoggedModel), which has no
    lifecycle stage: what the client lists is active."""
    metrics: dict[str, list[MetricInput]] = defaultdict(list)
    for point in model.metrics or []:
        metrics[point.run_id].append(
            MetricInput(
                point.key,
                point.value,
                point.timestamp,
                point.step,
                model_id=model.model_id,
                dataset_name=point.dataset_name,
                dataset_digest=point.dataset_digest,
            )
        )
    return SourceLoggedModel(
        model_id=model.model_id,
        name=model.name or "",
        model_type=model.model_type or "",
        status=str(model.status),
        status_message=model.status_message or "",
        lifecycle_stage=lifecycle_stage or ACTIVE,
        creation_time=model.creation_timestamp,
        last_updated_time=model.last_updated_timestamp,
        artifact_location=model.artifact_location or "",
        source_run_id=model.source_run_id or "",
        tags=dict(model.tags),
        params=dict(model.params),
        metrics=dict(metrics),
    )
