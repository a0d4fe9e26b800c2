"""Reading an MLflow tracking database (sqlite:///mlflow.db, postgresql://...)."""

import contextlib
import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from tracker.importing.source import (
    MlflowSource,
    SourceError,
    SourceExperiment,
    SourceLoggedModel,
    SourceRun,
    chunks,
    one_line,
)
from tracker.models import (
    ACTIVE,
)
from tracker.services import KeyValue, MetricInput
from tracker.services.datasets import DatasetInput
from tracker.services.logged_models import ModelOutput

# MLflow's own name for the workspace every client sees when the server runs without workspaces
# (mlflow.utils.workspace_utils.DEFAULT_WORKSPACE_NAME).
_DEFAULT_WORKSPACE = "default"
_MLFLOW_TABLES = ("experiments", "experiment_tags", "runs", "params", "tags", "metrics")
# Since MLflow 2.4 (mlflow.log_input); a database made before has none of them, and its runs no datasets.
_DATASET_TABLES = ("datasets", "inputs", "input_tags")
# Since MLflow 3.0 (logged models); their links to runs are `inputs` rows too.
_MODEL_TABLES = ("logged_models", "logged_model_tags", "logged_model_params", "logged_model_metrics")
# mlflow.entities.LoggedModelStatus.to_int; 0 (unspecified) is no status Runtree knows, and is refused.
_MODEL_STATUS = {1: "PENDING", 2: "READY", 3: "FAILED"}


def database_url(location: str) -> str:
    """The URL an MLflow database is opened with, by the tracking import and by mlflow's client
    for the registry: SQLAlchemy knows only the long postgresql:// spelling, and for it picks
    psycopg 3, while Runtree ships psycopg2. One rule, so the two parts of an import cannot
    differ on a source (the registry part once failed on a URL the runs were read from)."""
    scheme, separator, rest = location.partition("://")
    if separator and scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg2://{rest}"
    return location


class DatabaseSource(MlflowSource):
    """An MLflow tracking database, read table by table with SQLAlchemy Core: a chunk of runs
    (or of logged models) costs a few queries, whatever its size."""

    def __init__(self, location: str):
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        import sqlalchemy
        from sqlalchemy.engine import make_url

        try:
            url = make_url(database_url(location))
        except sqlalchemy.exc.ArgumentError:
            raise SourceError(f"{location!r} is not a tracking server URL, a database URL or a folder") from None
        self.description = url.render_as_string(hide_password=True)
        connect_args = {}
        if url.get_backend_name() == "sqlite":
            url = self._read_only(url)
        elif url.get_backend_name() == "postgresql":
            connect_args["connect_timeout"] = 10
        try:
            self.engine = sqlalchemy.create_engine(url, connect_args=connect_args)
        except sqlalchemy.exc.NoSuchModuleError:
            raise SourceError(
                f"{location!r} is not a tracking server URL (http://...), a database URL (sqlite:///..., "
                "postgresql://...) or a folder"
            ) from None
        except (sqlalchemy.exc.ArgumentError, ImportError) as exc:
            raise SourceError(f"Cannot open {self.description}: {one_line(exc)}") from None
        try:
            with self._reading() as connection:
                present = set(sqlalchemy.inspect(connection).get_table_names())
                missing = [name for name in _MLFLOW_TABLES if name not in present]
                if missing:
                    raise SourceError(
                        f"{self.description} is not an MLflow tracking database (missing tables: {', '.join(missing)})"
                    )
                metadata = sqlalchemy.MetaData()
                # The source's own columns, not mlflow's current models: older schemas read too.
                dataset_tables = _DATASET_TABLES if present.issuperset(_DATASET_TABLES) else ()
                model_tables = _MODEL_TABLES if dataset_tables and present.issuperset(_MODEL_TABLES) else ()
                metadata.reflect(bind=connection, only=_MLFLOW_TABLES + dataset_tables + model_tables)
        except SourceError:
            self.engine.dispose()
            raise
        self.tables = metadata.tables

    def _read_only(self, url):
        if not url.database or url.database == ":memory:":
            raise SourceError("An SQLite source needs a file, as in sqlite:///mlflow.db")
        path = Path(url.database)
        if not path.is_file():
            raise SourceError(f"No MLflow database at {path}: no such file")
        # Read-only, so the source is never written (and a mistyped path never creates a file).
        return f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"

    @contextlib.contextmanager
    def _reading(self):
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        import sqlalchemy

        try:
            with self.engine.connect() as connection:
                yield connection
        except sqlalchemy.exc.SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise SourceError(f"Reading {self.description} failed: {one_line(reason)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def experiments(self) -> list[SourceExperiment]:
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from sqlalchemy import select

        experiments, experiment_tags = self.tables["experiments"], self.tables["experiment_tags"]
        query = select(experiments).order_by(experiments.c.experiment_id)
        if "workspace" in experiments.c:
            query = query.where(experiments.c.workspace == _DEFAULT_WORKSPACE)
        with self._reading() as connection:
            rows = connection.execute(query).mappings().all()
            tags: dict[int, dict[str, str]] = defaultdict(dict)
            tag_rows = select(experiment_tags.c.experiment_id, experiment_tags.c.key, experiment_tags.c.value)
            for experiment_id, key, value in connection.execute(tag_rows):
                tags[experiment_id][key] = value or ""
        return [
            SourceExperiment(
                source_id=str(row["experiment_id"]),
                name=row["name"],
                artifact_location=row.get("artifact_location") or "",
                lifecycle_stage=row.get("lifecycle_stage") or ACTIVE,
                creation_time=row.get("creation_time"),
                last_update_time=row.get("last_update_time"),
                tags=tags[row["experiment_id"]],
            )
            for row in rows
        ]

    def run_count(self, experiment: SourceExperiment) -> int:
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from sqlalchemy import func, select

        runs = self.tables["runs"]
        with self._reading() as connection:
            query = select(func.count()).select_from(runs).where(runs.c.experiment_id == int(experiment.source_id))
            return connection.execute(query).scalar_one()

    def runs(self, experiment: SourceExperiment) -> Iterator[list[SourceRun]]:
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from sqlalchemy import select

        runs = self.tables["runs"]
        # source.creation_order, in SQL.
        query = (
            select(runs)
            .where(runs.c.experiment_id == int(experiment.source_id))
            .order_by(runs.c.start_time.is_(None), runs.c.start_time, runs.c.run_uuid)
        )
        with self._reading() as connection:
            rows = connection.execute(query).mappings().all()
        for chunk in chunks(rows, self.chunk_size):
            run_ids = [row["run_uuid"] for row in chunk]
            with self._reading() as connection:
                params = self._key_values(connection, "params", run_ids)
                tags = self._key_values(connection, "tags", run_ids)
                histories = self._histories(connection, run_ids)
                datasets = self._datasets(connection, run_ids)
                model_outputs, model_inputs = self._model_links(connection, run_ids)
            yield [
                SourceRun(
                    run_id=row["run_uuid"],
                    name=row.get("name") or "",
                    user_id=row.get("user_id") or "",
                    status=row["status"],
                    start_time=row.get("start_time"),
                    end_time=row.get("end_time"),
                    lifecycle_stage=row.get("lifecycle_stage") or ACTIVE,
                    deleted_time=row.get("deleted_time"),
                    artifact_uri=row.get("artifact_uri") or "",
                    params=params[row["run_uuid"]],
                    tags=tags[row["run_uuid"]],
                    metrics=histories[row["run_uuid"]],
                    datasets=datasets[row["run_uuid"]],
                    model_outputs=model_outputs[row["run_uuid"]],
                    model_inputs=model_inputs[row["run_uuid"]],
                )
                for row in chunk
            ]

    def _model_links(self, connection, run_ids: list[str]) -> tuple[dict, dict]:
        """The models each run produced (with the step) and used, in one query: MLflow keeps
        both as `inputs` rows from the run to the model (RUN_OUTPUT to MODEL_OUTPUT, RUN_INPUT
        to MODEL_INPUT; see SqlAlchemyStore.log_outputs and log_inputs)."""
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from sqlalchemy import and_, literal, or_, select

        outputs: dict[str, list[ModelOutput]] = defaultdict(list)
        used: dict[str, list[str]] = defaultdict(list)
        if "logged_models" not in self.tables:
            return outputs, used
        inputs = self.tables["inputs"]
        # The step came in the migration right after the logged-model tables.
        step_column = inputs.c.step if "step" in inputs.c else literal(0)
        query = (
            select(inputs.c.source_id, inputs.c.source_type, inputs.c.destination_id, step_column)
            .where(
                inputs.c.source_id.in_(run_ids),
                or_(
                    and_(inputs.c.source_type == "RUN_OUTPUT", inputs.c.destination_type == "MODEL_OUTPUT"),
                    and_(inputs.c.source_type == "RUN_INPUT", inputs.c.destination_type == "MODEL_INPUT"),
                ),
            )
            .order_by(inputs.c.source_id, inputs.c.destination_id)
        )
        for run_id, kind, model_id, step in connection.execute(query):
            if kind == "RUN_OUTPUT":
                outputs[run_id].append(ModelOutput(model_id, step or 0))
            else:
                used[run_id].append(model_id)
        return outputs, used

    def logged_models(self, experiment: SourceExperiment) -> Iterator[list[SourceLoggedModel]]:
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from sqlalchemy import select

        if "logged_models" not in self.tables:
            return
        models = self.tables["logged_models"]
        query = select(models).where(models.c.experiment_id == int(experiment.source_id)).order_by(models.c.model_id)
        with self._reading() as connection:
            rows = connection.execute(query).mappings().all()
        for chunk in chunks(rows, self.chunk_size):
            model_ids = [row["model_id"] for row in chunk]
            with self._reading() as connection:
                tags = self._key_values(
                    connection, "logged_model_tags", model_ids, ("model_id", "tag_key", "tag_value")
                )
                params = self._key_values(
                    connection, "logged_model_params", model_ids, ("model_id", "param_key", "param_value")
                )
                metrics = self._model_metrics(connection, model_ids)
            yield [
                SourceLoggedModel(
                    model_id=row["model_id"],
                    name=row["name"],
                    model_type=row.get("model_type") or "",
                    status=_MODEL_STATUS.get(row["status"], str(row["status"])),
                    status_message=row.get("status_message") or "",
                    lifecycle_stage=row.get("lifecycle_stage") or ACTIVE,
                    creation_time=row["creation_timestamp_ms"],
                    last_updated_time=row["last_updated_timestamp_ms"],
                    artifact_location=row["artifact_location"] or "",
                    source_run_id=row.get("source_run_id") or "",
                    tags=tags[row["model_id"]],
                    params=params[row["model_id"]],
                    metrics=metrics[row["model_id"]],
                )
                for row in chunk
            ]

    def _model_metrics(self, connection, model_ids: list[str]) -> dict[str, dict[str, list[MetricInput]]]:
        """Each model's points by the run that logged them. The SQL store keeps a model's NaN
        as 0 (SqlAlchemyStore.sanitize_metric_value, with no is_nan column here), as its client
        then reads it; a NULL is read as the NaN it stands for."""
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from sqlalchemy import select

        metrics = self.tables["logged_model_metrics"]
        columns = ("model_id", "run_id", "metric_name", "metric_value", "metric_timestamp_ms", "metric_step")
        query = (
            select(*(metrics.c[name] for name in columns), metrics.c.dataset_name, metrics.c.dataset_digest)
            .where(metrics.c.model_id.in_(model_ids))
            .order_by(metrics.c.model_id, metrics.c.metric_name, metrics.c.metric_step, metrics.c.metric_timestamp_ms)
        )
        found: dict[str, dict[str, list[MetricInput]]] = defaultdict(dict)
        for model_id, run_id, key, value, timestamp, step, dataset_name, dataset_digest in connection.execute(query):
            found[model_id].setdefault(run_id, []).append(
                MetricInput(
                    key,
                    math.nan if value is None else value,
                    timestamp,
                    step,
                    model_id=model_id,
                    dataset_name=dataset_name,
                    dataset_digest=dataset_digest,
                )
            )
        return found

    def _datasets(self, connection, run_ids: list[str]) -> dict[str, list[DatasetInput]]:
        """Each run's dataset inputs with their tags, in two queries (MLflow keeps a run's input
        as an `inputs` row from the dataset to the run, its tags in `input_tags`)."""
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from sqlalchemy import select

        found: dict[str, list[DatasetInput]] = defaultdict(list)
        if "inputs" not in self.tables:
            return found
        datasets, inputs, input_tags = (self.tables[name] for name in _DATASET_TABLES)
        query = (
            select(
                inputs.c.destination_id,
                inputs.c.input_uuid,
                datasets.c.name,
                datasets.c.digest,
                datasets.c.dataset_source_type,
                datasets.c.dataset_source,
                datasets.c.dataset_schema,
                datasets.c.dataset_profile,
            )
            .join(datasets, datasets.c.dataset_uuid == inputs.c.source_id)
            .where(
                inputs.c.source_type == "DATASET",
                inputs.c.destination_type == "RUN",
                inputs.c.destination_id.in_(run_ids),
            )
            .order_by(inputs.c.destination_id, inputs.c.input_uuid)
        )
        rows = connection.execute(query).all()
        tags: dict[str, list[KeyValue]] = defaultdict(list)
        input_ids = [row.input_uuid for row in rows]
        if input_ids:
            tag_query = select(input_tags.c.input_uuid, input_tags.c.name, input_tags.c.value).where(
                input_tags.c.input_uuid.in_(input_ids)
            )
            for input_id, key, value in connection.execute(tag_query):
                tags[input_id].append(KeyValue(key, value or ""))
        for row in rows:
            found[row.destination_id].append(
                DatasetInput(
                    name=row.name,
                    digest=row.digest,
                    source_type=row.dataset_source_type,
                    source=row.dataset_source or "",
                    schema=row.dataset_schema or "",
                    profile=row.dataset_profile or "",
                    tags=tags[row.input_uuid],
                )
            )
        return found

    def _key_values(
        self, connection, table_name: str, owner_ids: list[str], columns=("run_uuid", "key", "value")
    ) -> dict[str, dict[str, str]]:
        """{owner id: {key: value}} from a table of params or tags, a run's (by default) or a
        logged model's (whose columns MLflow names model_id, tag_key, tag_value, ...)."""
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from sqlalchemy import select

        table = self.tables[table_name]
        owner, key_column, value_column = (table.c[name] for name in columns)
        found: dict[str, dict[str, str]] = defaultdict(dict)
        query = select(owner, key_column, value_column).where(owner.in_(owner_ids))
        for owner_id, key, value in connection.execute(query):
            found[owner_id][key] = value or ""
        return found

    def _histories(self, connection, run_ids: list[str]) -> dict[str, list[MetricInput]]:
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from sqlalchemy import select

        metrics = self.tables["metrics"]
        found: dict[str, list[MetricInput]] = defaultdict(list)
        columns = [metrics.c[name] for name in ("run_uuid", "key", "value", "timestamp", "step", "is_nan")]
        query = (
            select(*columns)
            .where(metrics.c.run_uuid.in_(run_ids))
            .order_by(metrics.c.run_uuid, metrics.c.key, metrics.c.step, metrics.c.timestamp)
        )
        for run_id, key, value, timestamp, step, is_nan in connection.execute(query):
            # The SQL store keeps NaN as value 0 with is_nan set (SqlMetric.to_mlflow_entity).
            found[run_id].append(MetricInput(key, math.nan if is_nan else value, timestamp, step or 0))
        return found
