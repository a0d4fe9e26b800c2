"""What every MLflow source reader is, and helpers the readers share."""

from collections.abc import Iterator
from dataclasses import dataclass, field

from tracker.models import ACTIVE
from tracker.services import MetricInput
from tracker.services.datasets import DatasetInput
from tracker.services.logged_models import ModelOutput


@dataclass(frozen=True)
class SourceExperiment:
    source_id: str
    name: str
    artifact_location: str = ""
    lifecycle_stage: str = ACTIVE
    creation_time: int | None = None
    last_update_time: int | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceRun:
    run_id: str
    name: str = ""
    user_id: str = ""
    status: str = "FINISHED"
    start_time: int | None = None
    end_time: int | None = None
    lifecycle_stage: str = ACTIVE
    deleted_time: int | None = None
    artifact_uri: str = ""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # The whole history, every point of every key.
    metrics: list[MetricInput] = field(default_factory=list)
    # The datasets it logged as inputs (mlflow.log_input), each with its input's tags.
    datasets: list[DatasetInput] = field(default_factory=list)
    # The logged models it produced (log_model), each at its step, and the ones it used (by id).
    model_outputs: list[ModelOutput] = field(default_factory=list)
    model_inputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceLoggedModel:
    """An MLflow 3 logged model (what log_model makes), with its tags, params and metrics."""

    model_id: str
    name: str
    model_type: str = ""
    status: str = "READY"
    status_message: str = ""
    lifecycle_stage: str = ACTIVE
    creation_time: int | None = None
    last_updated_time: int | None = None
    artifact_location: str = ""
    source_run_id: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    # Each run id -> the points that run logged for the model (model_id, dataset name and digest set).
    metrics: dict[str, list[MetricInput]] = field(default_factory=dict)


class SourceError(Exception):
    """The source cannot be read: not there, not MLflow, or failing mid-way. One line, for people."""


class MlflowSource:
    """What the importer reads from a source. Each run that `runs` yields is complete: params,
    tags and every metric point. Use as a context manager."""

    description = ""
    chunk_size = 500
    # What mlflow's artifact repositories resolve `mlflow-artifacts:` URIs against, if anything.
    tracking_uri: str | None = None

    def experiments(self) -> list[SourceExperiment]:
        raise NotImplementedError

    def run_count(self, experiment: SourceExperiment) -> int:
        raise NotImplementedError

    def runs(self, experiment: SourceExperiment) -> Iterator[list[SourceRun]]:
        """The experiment's runs, a chunk at a time, in creation order (`creation_order`)."""
        raise NotImplementedError

    def logged_models(self, experiment: SourceExperiment) -> Iterator[list[SourceLoggedModel]]:
        """The experiment's logged models, a chunk at a time; read once its runs are written."""
        return iter(())

    def artifact_uri(self, experiment: SourceExperiment, run: SourceRun) -> str:
        """Where `run`'s artifacts are read from (import_mlflow --with-artifacts)."""
        return run.artifact_uri

    def model_artifact_uri(self, experiment: SourceExperiment, model: SourceLoggedModel) -> str:
        """Where `model`'s files are read from (import_mlflow --with-artifacts)."""
        return model.artifact_location

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def select_experiments(available: list[SourceExperiment], names: list[str] | None) -> list[SourceExperiment]:
    """The experiments named (all of them when `names` is empty), or SourceError naming what is missing."""
    if not names:
        return available
    by_name = {experiment.name: experiment for experiment in available}
    missing = [name for name in names if name not in by_name]
    if missing:
        known = ", ".join(repr(name) for name in list(by_name)[:10]) + (", ..." if len(by_name) > 10 else "")
        raise SourceError(f"No experiment named {', '.join(map(repr, missing))} in the source; it has {known}")
    return [by_name[name] for name in dict.fromkeys(names)]


def creation_order(start_time: int | None, run_id: str) -> tuple:
    """The order runs are written in: oldest first, runs with no start time last, then by id.
    Written in the order they were logged, a sweep's children lie together in the tables, as
    they would had they been logged here; in a source's id order (random uuids) the 100
    children of one parent sat on ~100 different pages, and reading them back (a search for
    one parent's children) cost an index probe into a different page per run."""
    return (start_time is None, start_time or 0, run_id)


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain: `[Errno 111] Connection refused` rather than the
    three layers of HTTP library wrapping around it."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return exc
