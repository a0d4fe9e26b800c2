"""Import MLflow history: experiments and runs from a tracking server, an MLflow database or an
mlruns folder, written into Runtree in bulk (`manage.py import_mlflow`).

A reader turns its source into plain dataclasses (SourceExperiment, SourceRun);
`experiment_import` writes one experiment with ingest's rules and invariants (its checks, NaN as
NULL, the latest-metric rule, materialized paths, mlflow.rootRunId), a chunk of runs per
statement instead of a row.

What an import keeps, and what importing again does:

- Experiments match by name; ids may differ. A new one takes the source's artifact location,
  lifecycle and times; one that exists keeps its own. Experiment tags are upserted.
- Runs match by run id. A new run takes everything. A run already here takes the attributes
  MLflow lets change (name, status, end time, lifecycle); its tags are upserted (a changed
  mlflow.parentRunId moves it); missing params are added (params are write-once: a value that
  differs keeps Runtree's, and is counted); metric points not stored yet are added, a point being
  its key, step, timestamp and value. So importing an unchanged source again changes nothing.
- mlflow.rootRunId is Runtree's to compute and runtree.* tags are Runtree's own summaries: the
  source's are left out.
- Runs may arrive in any order: an experiment's trees are linked once all of its runs exist. A
  run whose parent is not in the source stays a root marked "parent missing".
- Each experiment is written in one transaction, so a failure leaves whole experiments or none;
  a source is opened and listed before anything is written.
"""

import contextlib
import math
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from django.db import transaction

from tracker import ingest, summaries
from tracker.constants import PARENT_RUN_ID_TAG, RESERVED_TAG_PREFIX, ROOT_RUN_ID_TAG, RUN_NAME_TAG
from tracker.errors import InvalidParameterValue
from tracker.ingest import (
    MetricInput,
    _check_experiment_name,
    _check_experiment_tag,
    _check_integer,
    _check_key,
    _check_metric,
    _check_run_id,
    _check_run_name,
    _check_status,
    _check_text_value,
    now_ms,
)
from tracker.models import (
    ACTIVE,
    DELETED,
    Experiment,
    ExperimentTag,
    LatestMetric,
    Metric,
    Param,
    Run,
    RunTag,
)
from tracker.values import metric_sort_key, stored_value

# Rows per INSERT: large enough to amortize a round trip, small enough for PostgreSQL's planner
# (SQLite's variable limit is applied by Django on top).
INSERT_BATCH = 2000
MAX_USER_ID_LENGTH = Run._meta.get_field("user_id").max_length
# MLflow's SQL store cannot hold ±inf and keeps ±max float instead (SqlAlchemyStore.
# sanitize_metric_value); Runtree can, so the import gives back what was logged.
_SQL_STORE_INFINITY = sys.float_info.max


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


@dataclass
class ImportCounts:
    experiments_created: int = 0
    experiments_existing: int = 0
    runs_created: int = 0
    runs_existing: int = 0
    # Of the existing runs, those whose name, status, end time or lifecycle changed.
    runs_updated: int = 0
    # Run ids Runtree already holds in a different experiment: left alone (see _write_runs).
    runs_elsewhere: int = 0
    params: int = 0
    # Params whose source value differs from the one Runtree holds: Runtree's was kept.
    params_kept: int = 0
    tags: int = 0
    metric_points: int = 0

    def __iadd__(self, other: "ImportCounts") -> "ImportCounts":
        for counter in fields(self):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))
        return self

    @property
    def changed_runs(self) -> bool:
        return bool(self.runs_created or self.runs_updated or self.params or self.tags or self.metric_points)


# --- writing ---------------------------------------------------------------------------------


def experiment_import(
    *,
    experiment: SourceExperiment,
    run_chunks: Iterable[list[SourceRun]],
    on_progress: Callable[[int], object] = lambda runs_done: None,
) -> ImportCounts:
    """Write one source experiment and all of its runs in one transaction; return the counts.

    `run_chunks` may be a lazy reader: it is consumed inside the transaction, so a source that
    fails mid-way leaves nothing of this experiment behind. `on_progress` hears each chunk's size."""
    counts = ImportCounts()
    with transaction.atomic():
        target = _experiment_upsert(experiment, counts)
        for chunk in run_chunks:
            _write_runs(target, [_checked_run(run) for run in chunk], counts)
            on_progress(len(chunk))
        moved = ingest.experiment_link_parents(experiment=target)
        if moved or counts.changed_runs:
            # Coarse on purpose: one UPDATE for the experiment rather than one per imported run.
            summaries.mark_experiment_stale(experiment=target)
    return counts


def _experiment_upsert(source: SourceExperiment, counts: ImportCounts) -> Experiment:
    try:
        name = _check_experiment_name(source.name)
        tags = [_check_experiment_tag(key, value) for key, value in source.tags.items()]
        lifecycle_stage = _check_lifecycle(source.lifecycle_stage)
    except InvalidParameterValue as exc:
        raise InvalidParameterValue(f"Experiment {source.name!r}: {exc.message}") from None
    experiment = Experiment.objects.filter(name=name).first()
    if experiment is None:
        stamp = now_ms()
        experiment = Experiment.objects.create(
            name=name,
            artifact_location=source.artifact_location or "",
            lifecycle_stage=lifecycle_stage,
            creation_time=source.creation_time if source.creation_time is not None else stamp,
            last_update_time=source.last_update_time if source.last_update_time is not None else stamp,
        )
        counts.experiments_created += 1
    else:
        counts.experiments_existing += 1
    stored = dict(experiment.tags.values_list("key", "value"))
    changed = [
        ExperimentTag(experiment=experiment, key=t.key, value=t.value) for t in tags if stored.get(t.key) != t.value
    ]
    _upsert(ExperimentTag, changed, unique_fields=["experiment", "key"], update_fields=["value"])
    counts.tags += len(changed)
    return experiment


def _checked_run(run: SourceRun) -> SourceRun:
    """`run` with every value through ingest's checks (and normalized as they normalize)."""
    try:
        tags = {}
        for key, value in run.tags.items():
            if key == ROOT_RUN_ID_TAG or key.startswith(RESERVED_TAG_PREFIX):
                continue
            tags[_check_key(key, "Tag")] = _check_text_value(value, "Tag", key)
        if tags.get(PARENT_RUN_ID_TAG):
            _check_run_id(tags[PARENT_RUN_ID_TAG], f"'{PARENT_RUN_ID_TAG}'")
        user_id = run.user_id or ""
        if len(user_id) > MAX_USER_ID_LENGTH:
            raise InvalidParameterValue(f"User id is {len(user_id)} characters long; the limit is {MAX_USER_ID_LENGTH}")
        return SourceRun(
            run_id=_check_run_id(run.run_id, "Its run_id"),
            # As MLflow reads a run: its name, else the mlflow.runName tag.
            name=_check_run_name(run.name or tags.get(RUN_NAME_TAG, "")),
            user_id=user_id,
            status=_check_status(run.status),
            start_time=_optional_integer(run.start_time, "start_time"),
            end_time=_optional_integer(run.end_time, "end_time"),
            lifecycle_stage=_check_lifecycle(run.lifecycle_stage),
            deleted_time=_optional_integer(run.deleted_time, "deleted_time"),
            artifact_uri=run.artifact_uri or "",
            params={_check_key(k, "Param"): _check_text_value(v, "Param", k) for k, v in run.params.items()},
            tags=tags,
            metrics=[_with_infinity(_check_metric(metric)) for metric in run.metrics],
        )
    except InvalidParameterValue as exc:
        raise InvalidParameterValue(f"Run {run.run_id}: {exc.message}") from None


def _check_lifecycle(stage) -> str:
    if stage not in (ACTIVE, DELETED):
        raise InvalidParameterValue(f"Invalid lifecycle stage {stage!r}; expected '{ACTIVE}' or '{DELETED}'")
    return stage


def _optional_integer(value, what: str) -> int | None:
    return None if value is None else _check_integer(value, what)


def _with_infinity(metric: MetricInput) -> MetricInput:
    if abs(metric.value) == _SQL_STORE_INFINITY:
        return MetricInput(metric.key, math.copysign(math.inf, metric.value), metric.timestamp, metric.step)
    return metric


def _write_runs(experiment: Experiment, runs: list[SourceRun], counts: ImportCounts) -> None:
    runs = list({run.run_id: run for run in runs}.values())  # a run listed twice is written once
    stored = {run.run_id: run for run in Run.objects.filter(run_id__in=[run.run_id for run in runs])}
    # A run id already used in another experiment: moving the run, or merging into a tree this
    # import does not relink, would break that experiment's invariants. It is counted instead.
    elsewhere = {run_id for run_id, run in stored.items() if run.experiment_id != experiment.pk}
    runs = [run for run in runs if run.run_id not in elsewhere]
    counts.runs_elsewhere += len(elsewhere)
    existing = {run_id: run for run_id, run in stored.items() if run_id not in elsewhere}

    created = _insert_runs([_new_run(experiment, run) for run in runs if run.run_id not in existing])
    updated = [existing[run.run_id] for run in runs if run.run_id in existing and _sync(existing[run.run_id], run)]
    Run.objects.bulk_update(updated, _SYNCED_FIELDS, batch_size=500)
    counts.runs_created += len(created)
    counts.runs_existing += len(existing)
    counts.runs_updated += len(updated)

    pk_by_run_id = {run.run_id: run.pk for run in [*created, *existing.values()]}
    existing_pks = [run.pk for run in existing.values()]
    _write_params(runs, pk_by_run_id, existing_pks, counts)
    _write_tags(runs, pk_by_run_id, existing_pks, counts)
    _write_metrics(runs, pk_by_run_id, existing_pks, counts)


def _new_run(experiment: Experiment, run: SourceRun) -> Run:
    # No place in a tree yet (empty path): ingest.experiment_link_parents gives one once every
    # run of the experiment exists.
    return Run(
        run_id=run.run_id,
        experiment=experiment,
        name=run.name,
        user_id=run.user_id,
        status=run.status,
        start_time=run.start_time,
        end_time=run.end_time,
        lifecycle_stage=run.lifecycle_stage,
        deleted_time=run.deleted_time,
        artifact_uri=run.artifact_uri,
        parent_run_id=run.tags.get(PARENT_RUN_ID_TAG, ""),
    )


def _insert_runs(runs: list[Run]) -> list[Run]:
    Run.objects.bulk_create(runs, batch_size=INSERT_BATCH)
    if any(run.pk is None for run in runs):  # a backend that does not return ids from bulk inserts
        pks = dict(Run.objects.filter(run_id__in=[run.run_id for run in runs]).values_list("run_id", "pk"))
        for run in runs:
            run.pk = pks[run.run_id]
    return runs


_SYNCED_FIELDS = ["name", "status", "end_time", "lifecycle_stage", "deleted_time", "parent_run_id"]


def _sync(run: Run, source: SourceRun) -> bool:
    """Give an existing run the source's changeable attributes; True if any changed."""
    wanted = {"status": source.status, "end_time": source.end_time, "lifecycle_stage": source.lifecycle_stage}
    if source.name:
        wanted["name"] = source.name
    # A reader that cannot see deletion times (MLflow's client hides them) must not erase one.
    if source.deleted_time is not None or source.lifecycle_stage != run.lifecycle_stage:
        wanted["deleted_time"] = source.deleted_time
    # Tags are upserted, never removed: a parent link only changes when the source names one.
    if PARENT_RUN_ID_TAG in source.tags:
        wanted["parent_run_id"] = source.tags[PARENT_RUN_ID_TAG]
    changed = {name: value for name, value in wanted.items() if getattr(run, name) != value}
    for name, value in changed.items():
        setattr(run, name, value)
    return bool(changed)


def _write_params(runs: list[SourceRun], pk_by_run_id: dict, existing_pks: list[int], counts: ImportCounts) -> None:
    stored: dict[int, dict[str, str]] = defaultdict(dict)
    for run_pk, key, value in Param.objects.filter(run_id__in=existing_pks).values_list("run_id", "key", "value"):
        stored[run_pk][key] = value
    new = []
    for run in runs:
        run_pk = pk_by_run_id[run.run_id]
        for key, value in run.params.items():
            if key not in stored[run_pk]:
                new.append(Param(run_id=run_pk, key=key, value=value))
            elif stored[run_pk][key] != value:
                counts.params_kept += 1
    Param.objects.bulk_create(new, batch_size=INSERT_BATCH)
    counts.params += len(new)


def _write_tags(runs: list[SourceRun], pk_by_run_id: dict, existing_pks: list[int], counts: ImportCounts) -> None:
    stored: dict[int, dict[str, str]] = defaultdict(dict)
    for run_pk, key, value in RunTag.objects.filter(run_id__in=existing_pks).values_list("run_id", "key", "value"):
        stored[run_pk][key] = value
    changed = [
        RunTag(run_id=pk_by_run_id[run.run_id], key=key, value=value)
        for run in runs
        for key, value in run.tags.items()
        if stored[pk_by_run_id[run.run_id]].get(key) != value
    ]
    _upsert(RunTag, changed, unique_fields=["run", "key"], update_fields=["value"])
    counts.tags += len(changed)


def _write_metrics(runs: list[SourceRun], pk_by_run_id: dict, existing_pks: list[int], counts: ImportCounts) -> None:
    stored: dict[int, set[tuple]] = defaultdict(set)
    for run_pk, *point in Metric.objects.filter(run_id__in=existing_pks).values_list(
        "run_id", "key", "step", "timestamp", "value"
    ):
        stored[run_pk].add(tuple(point))
    new = []
    # (run pk, key) -> the newest of the points written now, by MLflow's "latest" order.
    newest: dict[tuple[int, str], Metric] = {}
    for run in runs:
        run_pk = pk_by_run_id[run.run_id]
        for metric in run.metrics:
            value = stored_value(metric.value)
            point = (metric.key, metric.step, metric.timestamp, value)
            if point in stored[run_pk]:
                continue
            stored[run_pk].add(point)
            row = Metric(run_id=run_pk, key=metric.key, value=value, timestamp=metric.timestamp, step=metric.step)
            new.append(row)
            best = newest.get((run_pk, metric.key))
            if best is None or _order(row) > _order(best):
                newest[(run_pk, metric.key)] = row
    Metric.objects.bulk_create(new, batch_size=INSERT_BATCH)
    counts.metric_points += len(new)

    touched_existing = {run_pk for run_pk, _ in newest}.intersection(existing_pks)
    current = {
        (latest.run_id, latest.key): latest for latest in LatestMetric.objects.filter(run_id__in=touched_existing)
    }
    winners = [
        LatestMetric(run_id=run_pk, key=key, value=row.value, timestamp=row.timestamp, step=row.step)
        for (run_pk, key), row in newest.items()
        if (run_pk, key) not in current or _order(row) > _order(current[(run_pk, key)])
    ]
    _upsert(LatestMetric, winners, unique_fields=["run", "key"], update_fields=["value", "timestamp", "step"])


def _order(row: Metric | LatestMetric) -> tuple:
    return metric_sort_key(row.step, row.timestamp, row.value)


def _upsert(model, rows: list, *, unique_fields: list[str], update_fields: list[str]) -> None:
    model.objects.bulk_create(
        rows,
        batch_size=INSERT_BATCH,
        update_conflicts=True,
        unique_fields=unique_fields,
        update_fields=update_fields,
    )


# --- reading ---------------------------------------------------------------------------------


class SourceError(Exception):
    """The source cannot be read: not there, not MLflow, or failing mid-way. One line, for people."""


class MlflowSource:
    """What the importer reads from a source. Each run that `runs` yields is complete: params,
    tags and every metric point. Use as a context manager."""

    description = ""
    chunk_size = 500

    def experiments(self) -> list[SourceExperiment]:
        raise NotImplementedError

    def run_count(self, experiment: SourceExperiment) -> int:
        raise NotImplementedError

    def runs(self, experiment: SourceExperiment) -> Iterator[list[SourceRun]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def open_source(location: str) -> MlflowSource:
    """The reader for `location`: a tracking server (http:// or https://), a database URL
    (sqlite:///mlflow.db, postgresql://...), or an mlruns folder (a path or a file:// URI).
    Raises SourceError, before anything is written, when it is not a readable MLflow source."""
    try:
        if location.startswith(("http://", "https://")):
            return TrackingServerSource(location)
        if location.startswith("file:") or "://" not in location:
            return FileStoreSource(location)
        return DatabaseSource(location)
    except ModuleNotFoundError as exc:
        # mlflow (with SQLAlchemy) is a development requirement of Runtree, not a runtime one.
        raise SourceError(f"Reading MLflow sources needs the mlflow package ({exc}): pip install mlflow") from None


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


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain: `[Errno 111] Connection refused` rather than the
    three layers of HTTP library wrapping around it."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return exc


# MLflow's own name for the workspace every client sees when the server runs without workspaces
# (mlflow.utils.workspace_utils.DEFAULT_WORKSPACE_NAME).
_DEFAULT_WORKSPACE = "default"
_MLFLOW_TABLES = ("experiments", "experiment_tags", "runs", "params", "tags", "metrics")


class DatabaseSource(MlflowSource):
    """An MLflow tracking database, read table by table with SQLAlchemy Core: a chunk of runs
    costs four queries, whatever its size."""

    def __init__(self, location: str):
        import sqlalchemy
        from sqlalchemy.engine import make_url

        if location.startswith("postgres://"):  # SQLAlchemy knows only the long spelling
            location = "postgresql://" + location.removeprefix("postgres://")
        try:
            url = make_url(location)
        except sqlalchemy.exc.ArgumentError:
            raise SourceError(f"{location!r} is not a tracking server URL, a database URL or a folder") from None
        self.description = url.render_as_string(hide_password=True)
        connect_args = {}
        if url.get_backend_name() == "sqlite":
            url = self._read_only(url)
        elif url.get_backend_name() == "postgresql":
            if url.drivername == "postgresql":  # SQLAlchemy would pick psycopg 3; Runtree ships psycopg2
                url = url.set(drivername="postgresql+psycopg2")
            connect_args["connect_timeout"] = 10
        try:
            self.engine = sqlalchemy.create_engine(url, connect_args=connect_args)
        except sqlalchemy.exc.NoSuchModuleError:
            raise SourceError(
                f"{location!r} is not a tracking server URL (http://...), a database URL (sqlite:///..., "
                "postgresql://...) or a folder"
            ) from None
        except (sqlalchemy.exc.ArgumentError, ImportError) as exc:
            raise SourceError(f"Cannot open {self.description}: {_one_line(exc)}") from None
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
                metadata.reflect(bind=connection, only=_MLFLOW_TABLES)
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
        import sqlalchemy

        try:
            with self.engine.connect() as connection:
                yield connection
        except sqlalchemy.exc.SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise SourceError(f"Reading {self.description} failed: {_one_line(reason)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def experiments(self) -> list[SourceExperiment]:
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
        from sqlalchemy import func, select

        runs = self.tables["runs"]
        with self._reading() as connection:
            query = select(func.count()).select_from(runs).where(runs.c.experiment_id == int(experiment.source_id))
            return connection.execute(query).scalar_one()

    def runs(self, experiment: SourceExperiment) -> Iterator[list[SourceRun]]:
        from sqlalchemy import select

        runs = self.tables["runs"]
        query = select(runs).where(runs.c.experiment_id == int(experiment.source_id)).order_by(runs.c.run_uuid)
        with self._reading() as connection:
            rows = connection.execute(query).mappings().all()
        for chunk in _chunks(rows, self.chunk_size):
            run_ids = [row["run_uuid"] for row in chunk]
            with self._reading() as connection:
                params = self._key_values(connection, "params", run_ids)
                tags = self._key_values(connection, "tags", run_ids)
                histories = self._histories(connection, run_ids)
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
                )
                for row in chunk
            ]

    def _key_values(self, connection, table_name: str, run_ids: list[str]) -> dict[str, dict[str, str]]:
        from sqlalchemy import select

        table = self.tables[table_name]
        found: dict[str, dict[str, str]] = defaultdict(dict)
        query = select(table.c.run_uuid, table.c.key, table.c.value).where(table.c.run_uuid.in_(run_ids))
        for run_id, key, value in connection.execute(query):
            found[run_id][key] = value or ""
        return found

    def _histories(self, connection, run_ids: list[str]) -> dict[str, list[MetricInput]]:
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


class _ClientSource(MlflowSource):
    """A source read through mlflow's own client: a tracking server's REST API or an mlruns
    folder. A run's history costs one call per metric key, so chunks are smaller."""

    chunk_size = 100

    def __init__(self, tracking_uri: str, description: str):
        from mlflow.tracking import MlflowClient

        self.description = description
        with self._reading():
            self.client = MlflowClient(tracking_uri=tracking_uri)
        self._listed: dict[str, list] = {}

    @contextlib.contextmanager
    def _reading(self):
        from mlflow.exceptions import MlflowException

        try:
            yield
        except (MlflowException, OSError) as exc:
            raise SourceError(f"Reading {self.description} failed: {_one_line(exc)}") from None

    def experiments(self) -> list[SourceExperiment]:
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
        for chunk in _chunks(self._list_runs(experiment), self.chunk_size):
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
        )


class TrackingServerSource(_ClientSource):
    """A running MLflow tracking server (or anything speaking its REST API, Runtree included)."""

    _PROBE_ENDPOINT = "/api/2.0/mlflow/experiments/search"

    def __init__(self, url: str):
        url = url.rstrip("/")
        self._probe(url)
        super().__init__(url, url)

    def _probe(self, url: str) -> None:
        """One quick request without retries: mlflow's client retries an unreachable server for
        minutes, and reads a web page that is not MLflow's as an obscure error."""
        from mlflow.tracking._tracking_service.utils import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        try:
            response = http_request(
                get_default_host_creds(url),
                self._PROBE_ENDPOINT,
                "GET",
                params={"max_results": 1},
                max_retries=0,
                timeout=10,
                raise_on_status=False,
            )
        except Exception as exc:  # mlflow wraps the HTTP library's many errors in several types
            raise SourceError(f"Cannot reach the tracking server at {url}: {_one_line(_root_cause(exc))}") from None
        if response.status_code in (401, 403):
            raise SourceError(
                f"The tracking server at {url} refused access (HTTP {response.status_code}): set "
                "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        is_experiment_list = isinstance(body, dict) and set(body) <= {"experiments", "next_page_token"}
        if response.status_code != 200 or not is_experiment_list:
            raise SourceError(
                f"{url} is not an MLflow tracking server: GET {self._PROBE_ENDPOINT} answered "
                f"HTTP {response.status_code}, not MLflow's list of experiments"
            )


_ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


class FileStoreSource(_ClientSource):
    """An mlruns folder, MLflow's file store."""

    def __init__(self, location: str):
        path = Path(unquote(urlparse(location).path) if location.startswith("file:") else location).expanduser()
        if path.is_file():
            raise SourceError(
                f"{path} is a file, not an mlruns folder (an MLflow SQLite database is read as sqlite:///{path})"
            )
        if not path.is_dir():
            raise SourceError(f"No MLflow file store at {path}: no such folder")
        has_experiments = any((child / "meta.yaml").is_file() for child in path.iterdir() if child.is_dir())
        if not has_experiments and not (path / ".trash").is_dir():
            raise SourceError(f"{path} is not an MLflow file store: it has no experiment folders with a meta.yaml")
        # mlflow 3 refuses to open a file store unless asked to: it wants users to migrate off
        # it, which is what this import does. Reading changes nothing in the folder.
        self._allow_before = os.environ.get(_ALLOW_FILE_STORE)
        os.environ[_ALLOW_FILE_STORE] = "true"
        try:
            super().__init__(path.resolve().as_uri(), str(path))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._allow_before is None:
            os.environ.pop(_ALLOW_FILE_STORE, None)
        else:
            os.environ[_ALLOW_FILE_STORE] = self._allow_before
