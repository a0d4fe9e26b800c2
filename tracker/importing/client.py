"""Reading through mlflow's own client: the base of the tracking-server and file-store readers."""

import contextlib
from collections.abc import Iterator

from tracker.importing.source import MlflowSource, SourceError, SourceExperiment, SourceRun, chunks, one_line
from tracker.services import KeyValue, MetricInput
from tracker.services.datasets import DatasetInput


class ClientSource(MlflowSource):
    """A source read through mlflow's own client: a tracking server's REST API or an mlruns
    folder. A run's history costs one call per metric key, so chunks are smaller."""

    chunk_size = 100

    def __init__(self, tracking_uri: str, description: str):
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from mlflow.tracking import MlflowClient

        self.description = description
        self.tracking_uri = tracking_uri
        with self._reading():
            self.client = MlflowClient(tracking_uri=tracking_uri)
        self._listed: dict[str, list] = {}

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
            self._listed[experiment.source_id] = listed
        return self._listed[experiment.source_id]

    def runs(self, experiment: SourceExperiment) -> Iterator[list[SourceRun]]:
        for chunk in chunks(self._list_runs(experiment), self.chunk_size):
            with self._reading():
                source_runs = [self._source_run(run) for run in chunk]
            yield source_runs
        self._listed.pop(experiment.source_id, None)

    def _source_run(self, run) -> SourceRun:
        info, data = run.info, run.data
        history = [
            MetricInput(point.key, point.value, point.timestamp, point.step)
            for key in sorted(data.metrics)
            for point in self.client.get_metric_history(info.run_id, key)
        ]
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
        )


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
