"""The tracking API's hot statements, as fixed SQL with placeholders.

A sweep logs through the mlflow client one tiny call at a time, and compiling each call's
queries through the ORM cost far more than running them: 0.5 ms to build `Run.objects.get(...)`
against 0.05 ms to execute it (cProfile, 2-core machine), which made the ORM most of a write's
time. These are the same statements written once. The SQL text is made from model metadata
when this module is imported (and, for a batch, from the number of rows); values always travel
as parameters, never in the text.

Both databases speak this dialect: `INSERT … ON CONFLICT … DO UPDATE … WHERE` and `RETURNING`
(PostgreSQL 10+, SQLite 3.35+). The rules (limits, validation, the order of "latest") stay in
tracker/services/ and tracker/models.py; this module only stores and reads.
"""

import csv
import io
from collections.abc import Iterable, Sequence

from django.db import connection

from tracker.models import Experiment, LatestMetric, Metric, Param, Run, RunSummary, RunTag


def _table(model) -> str:
    return f'"{model._meta.db_table}"'


def _column(model, name: str) -> str:
    return f'"{model._meta.get_field(name).column}"'


def _rows(count: int, width: int) -> str:
    """`(%s, …), (%s, …)`: placeholders for `count` rows of `width` values."""
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * count)


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


# SQLite's default bound on parameters per statement is 32,766; batches go in slices below it.
_MAX_PARAMETERS = 30_000


def _slices(items: Sequence, width: int) -> Iterable[Sequence]:
    size = _MAX_PARAMETERS // width
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _fetchall(sql: str, params: Sequence) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _execute(sql: str, params: Sequence) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- lookups -----------------------------------------------------------------------------------


class _Rows:
    """Whole rows of `model` where `where` holds, as model instances (Model.from_db, as the ORM
    builds them)."""

    def __init__(self, model, where: str):
        self.model = model
        self.fields = [field.attname for field in model._meta.concrete_fields]
        columns = ", ".join(_column(model, name) for name in self.fields)
        self.sql = f"SELECT {columns} FROM {_table(model)} WHERE {where}"

    def all(self, params: Sequence) -> list:
        return [self.model.from_db(connection.alias, self.fields, row) for row in _fetchall(self.sql, params)]

    def first(self, params: Sequence):
        found = self.all(params)
        return found[0] if found else None


_RUN_BY_RUN_ID = _Rows(Run, f"{_column(Run, 'run_id')} = %s")
_EXPERIMENT_BY_ID = _Rows(Experiment, f"{_column(Experiment, 'id')} = %s")
_WAITING_CHILDREN = _Rows(
    Run,
    f"{_column(Run, 'parent')} IS NULL AND {_column(Run, 'parent_run_id')} = %s AND {_column(Run, 'experiment')} = %s",
)


def run_by_run_id(run_id: str) -> Run | None:
    return _RUN_BY_RUN_ID.first([run_id])


def experiment_by_id(experiment_id: int) -> Experiment | None:
    return _EXPERIMENT_BY_ID.first([experiment_id])


def waiting_children(run: Run) -> list[Run]:
    """Runs that named `run` as their parent before it existed."""
    return _WAITING_CHILDREN.all([run.run_id, run.experiment_id])


_RUN_ID_BY_PK = f"SELECT {_column(Run, 'run_id')} FROM {_table(Run)} WHERE {_column(Run, 'id')} = %s"


def run_id_by_pk(pk: int) -> str:
    return _fetchall(_RUN_ID_BY_PK, [pk])[0][0]


_IS_BEST_RUN = f"SELECT 1 FROM {_table(RunSummary)} WHERE {_column(RunSummary, 'best_run')} = %s LIMIT 1"


def is_some_parents_best_run(run_pk: int) -> bool:
    return bool(_fetchall(_IS_BEST_RUN, [run_pk]))


# --- runs --------------------------------------------------------------------------------------

_RUN_INSERT_FIELDS = [field for field in Run._meta.concrete_fields if field.attname != "id"]
_INSERT_RUN = (
    f"INSERT INTO {_table(Run)} ({', '.join(_column(Run, field.name) for field in _RUN_INSERT_FIELDS)}) "
    f"VALUES ({_placeholders(len(_RUN_INSERT_FIELDS))}) RETURNING {_column(Run, 'id')}"
)


def insert_run(run: Run) -> None:
    """INSERT `run` and set its pk (what `run.save()` does, without compiling the INSERT)."""
    values = [field.get_db_prep_save(getattr(run, field.attname), connection) for field in _RUN_INSERT_FIELDS]
    run.pk = _fetchall(_INSERT_RUN, values)[0][0]
    run._state.adding = False
    run._state.db = connection.alias


# Only these columns are ever updated through here; the SQL for each set is made once.
_UPDATABLE_RUN_FIELDS = ("name", "status", "end_time", "artifact_uri", "path")
_update_run_sql: dict[tuple[str, ...], str] = {}


def update_run(run: Run, fields: Sequence[str]) -> None:
    """UPDATE `fields` of `run` from its attributes (`run.save(update_fields=…)`, uncompiled)."""
    fields = tuple(fields)
    sql = _update_run_sql.get(fields)
    if sql is None:
        unknown = set(fields) - set(_UPDATABLE_RUN_FIELDS)
        if unknown:
            raise ValueError(f"update_run does not update {sorted(unknown)}")
        assignments = ", ".join(f"{_column(Run, name)} = %s" for name in fields)
        sql = _update_run_sql[fields] = f"UPDATE {_table(Run)} SET {assignments} WHERE {_column(Run, 'id')} = %s"
    _execute(sql, [*(getattr(run, name) for name in fields), run.pk])


_MARK_STALE = f"UPDATE {_table(Run)} SET {_column(Run, 'summary_stale')} = TRUE WHERE {_column(Run, 'id')} = %s"


def mark_stale(run_pk: int) -> None:
    """Set one run's summary_stale flag (the row lock orders it against a refresh's claim)."""
    _execute(_MARK_STALE, [run_pk])


# --- params, tags, metrics ---------------------------------------------------------------------


def insert_params(run_pk: int, params: Sequence[tuple[str, str]]) -> set[str]:
    """Insert (key, value) params the run does not have yet; returns the keys inserted.
    A key already stored (or being stored by a concurrent writer, which this waits for) is left."""
    inserted = set()
    for part in _slices(params, 3):
        sql = (
            f"INSERT INTO {_table(Param)} ({_column(Param, 'run')}, {_column(Param, 'key')}, "
            f"{_column(Param, 'value')}) VALUES {_rows(len(part), 3)} "
            f"ON CONFLICT ({_column(Param, 'run')}, {_column(Param, 'key')}) DO NOTHING "
            f"RETURNING {_column(Param, 'key')}"
        )
        inserted.update(key for (key,) in _fetchall(sql, [v for key, value in part for v in (run_pk, key, value)]))
    return inserted


def stored_params(run_pk: int, keys: Sequence[str]) -> dict[str, str]:
    stored = {}
    for part in _slices(keys, 1):
        sql = (
            f"SELECT {_column(Param, 'key')}, {_column(Param, 'value')} FROM {_table(Param)} "
            f"WHERE {_column(Param, 'run')} = %s AND {_column(Param, 'key')} IN ({_placeholders(len(part))})"
        )
        stored.update(_fetchall(sql, [run_pk, *part]))
    return stored


def upsert_tags(run_pk: int, tags: Sequence[tuple[str, str]]) -> None:
    """Set each (key, value) tag, replacing a stored value. Keys must be distinct."""
    for part in _slices(tags, 3):
        sql = (
            f"INSERT INTO {_table(RunTag)} ({_column(RunTag, 'run')}, {_column(RunTag, 'key')}, "
            f"{_column(RunTag, 'value')}) VALUES {_rows(len(part), 3)} "
            f"ON CONFLICT ({_column(RunTag, 'run')}, {_column(RunTag, 'key')}) "
            f"DO UPDATE SET {_column(RunTag, 'value')} = excluded.{_column(RunTag, 'value')}"
        )
        _execute(sql, [v for key, value in part for v in (run_pk, key, value)])


_METRIC_COLUMNS = ", ".join(_column(Metric, name) for name in ("run", "key", "value", "timestamp", "step"))
_COPY_METRICS = f"COPY {_table(Metric)} ({_METRIC_COLUMNS}) FROM STDIN WITH (FORMAT csv)"
# From this many rows on, PostgreSQL takes a batch by COPY: binding and parsing 5 placeholders a
# row cost more than the rows (1,000 metrics: 38 ms by INSERT, 25 ms by COPY, on a 2-core VM).
_COPY_FROM_ROWS = 50


def insert_metrics(run_pk: int, rows: Sequence[tuple[str, float | None, int, int]]) -> None:
    """Append (key, value, timestamp, step) rows to the run's metric history."""
    if connection.vendor == "postgresql" and len(rows) >= _COPY_FROM_ROWS:
        _copy_metrics(run_pk, rows)
        return
    for part in _slices(rows, 5):
        sql = (
            f"INSERT INTO {_table(Metric)} ({_column(Metric, 'run')}, {_column(Metric, 'key')}, "
            f"{_column(Metric, 'value')}, {_column(Metric, 'timestamp')}, {_column(Metric, 'step')}) "
            f"VALUES {_rows(len(part), 5)}"
        )
        _execute(sql, [v for row in part for v in (run_pk, *row)])


def _copy_metrics(run_pk: int, rows: Sequence[tuple[str, float | None, int, int]]) -> None:
    lines = io.StringIO()
    writer = csv.writer(lines, lineterminator="\n")  # quotes what needs quoting; an empty field is NULL
    for key, value, timestamp, step in rows:
        writer.writerow((run_pk, key, "" if value is None else repr(value), timestamp, step))
    lines.seek(0)
    with connection.cursor() as cursor:
        cursor.copy_expert(_COPY_METRICS, lines)  # Django logs it like any statement


# "Newer" in one SQL condition: values.metric_sort_key's order (step, then timestamp, then the
# value, a NULL, that is a NaN, lowest): `excluded` is the proposed row, the table's the stored one.
_LATEST_METRIC_COLUMNS = {name: _column(LatestMetric, name) for name in ("run", "key", "value", "timestamp", "step")}
_NEWER_THAN_STORED = (
    "(excluded.{step} > {table}.{step} OR (excluded.{step} = {table}.{step} "
    "AND (excluded.{timestamp} > {table}.{timestamp} OR (excluded.{timestamp} = {table}.{timestamp} "
    "AND excluded.{value} IS NOT NULL "
    "AND ({table}.{value} IS NULL OR excluded.{value} > {table}.{value})))))"
).format(table=_table(LatestMetric), **_LATEST_METRIC_COLUMNS)
_UPSERT_LATEST_METRICS = (
    "INSERT INTO {table} ({run}, {key}, {value}, {timestamp}, {step}) VALUES {{rows}} "
    "ON CONFLICT ({run}, {key}) DO UPDATE SET {value} = excluded.{value}, "
    "{timestamp} = excluded.{timestamp}, {step} = excluded.{step} "
    "WHERE {newer} RETURNING {key}"
).format(table=_table(LatestMetric), newer=_NEWER_THAN_STORED, **_LATEST_METRIC_COLUMNS)


def upsert_latest_metrics(run_pk: int, rows: Sequence[tuple[str, float | None, int, int]]) -> list[str]:
    """Make each (key, value, timestamp, step) the run's latest value of its key where it is
    newer than the stored one (or there is none); returns the keys that changed.

    One statement per slice, so it is atomic on both databases: a concurrent writer of the same
    key either committed first (its row is compared against) or waits for this one. Rows go in
    key order, which is the order the locks are taken in, so two batches never deadlock.
    Keys must be distinct."""
    rows = sorted(rows)
    changed = []
    for part in _slices(rows, 5):
        sql = _UPSERT_LATEST_METRICS.format(rows=_rows(len(part), 5))
        changed.extend(key for (key,) in _fetchall(sql, [v for row in part for v in (run_pk, *row)]))
    return changed


# --- reading runs back (MLflow's Run JSON) -----------------------------------------------------


def _of_runs(select: str, table: str, run_column: str, run_pks: Sequence[int], order: str = "") -> list[tuple]:
    if not run_pks:
        return []
    if connection.vendor == "postgresql":
        # One array parameter, not an IN list: PostgreSQL plans an IN list constant by constant,
        # which made the four reads of a 984-run search page take 16 ms instead of 12.
        pks = "{" + ",".join(str(int(pk)) for pk in run_pks) + "}"
        return _fetchall(f"{select} FROM {table} WHERE {run_column} = ANY(%s::bigint[]){order}", [pks])
    rows = []
    for part in _slices(run_pks, 1):
        rows += _fetchall(f"{select} FROM {table} WHERE {run_column} IN ({_placeholders(len(part))}){order}", part)
    return rows


def params_of(run_pks: Sequence[int]) -> list[tuple[int, str, str]]:
    """(run pk, key, value) of each param of `run_pks`."""
    columns = ", ".join(_column(Param, name) for name in ("run", "key", "value"))
    return _of_runs(f"SELECT {columns}", _table(Param), _column(Param, "run"), run_pks)


def tags_of(run_pks: Sequence[int]) -> list[tuple[int, str, str]]:
    """(run pk, key, value) of each tag of `run_pks`."""
    columns = ", ".join(_column(RunTag, name) for name in ("run", "key", "value"))
    return _of_runs(f"SELECT {columns}", _table(RunTag), _column(RunTag, "run"), run_pks)


def latest_metrics_of(run_pks: Sequence[int]) -> list[tuple[int, str, float | None, int, int]]:
    """(run pk, key, value, timestamp, step) of each latest metric of `run_pks`."""
    columns = ", ".join(_LATEST_METRIC_COLUMNS[name] for name in ("run", "key", "value", "timestamp", "step"))
    return _of_runs(f"SELECT {columns}", _table(LatestMetric), _LATEST_METRIC_COLUMNS["run"], run_pks)


_BEST_PARAMS = RunSummary._meta.get_field("best_params")


def best_summaries_of(run_pks: Sequence[int]) -> list[tuple[int, str, float | None, str, dict]]:
    """(run pk, key, best value, best run's run_id, best run's params) of each summary of
    `run_pks` that has a best run, in run and key order."""
    summary, run = _table(RunSummary), _table(Run)
    select = (
        f"SELECT {summary}.{_column(RunSummary, 'run')}, {summary}.{_column(RunSummary, 'key')}, "
        f"{summary}.{_column(RunSummary, 'best_value')}, {run}.{_column(Run, 'run_id')}, "
        f"{summary}.{_column(RunSummary, 'best_params')}"
    )
    joined = f"{summary} JOIN {run} ON {run}.{_column(Run, 'id')} = {summary}.{_column(RunSummary, 'best_run')}"
    rows = _of_runs(
        select,
        joined,
        f"{summary}.{_column(RunSummary, 'run')}",
        run_pks,
        order=f" ORDER BY {summary}.{_column(RunSummary, 'run')}, {summary}.{_column(RunSummary, 'key')}",
    )
    return [(*row[:4], _BEST_PARAMS.from_db_value(row[4], None, connection)) for row in rows]
