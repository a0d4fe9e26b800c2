"""The tracking API's hot statements, and the summary worker's, as fixed SQL with placeholders.

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

from collections.abc import Iterable, Sequence

from django.db import connection

from tracker.constants import SYSTEM_METRIC_PREFIX
from tracker.models import (
    Dataset,
    Experiment,
    LatestMetric,
    LoggedModel,
    LoggedModelMetric,
    Metric,
    Param,
    ParamImportance,
    Run,
    RunDatasetInput,
    RunModelInput,
    RunModelOutput,
    RunSummary,
    RunTag,
)


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


# PostgreSQL only: the experiment's row is the lock of its trees' shape (tracker/services/placement.py).
# Each its own statement: a read after it, in READ COMMITTED, sees what a move that held the
# lock committed (a read in the locking statement would see the rows as they were before the wait).
_LOCK_EXPERIMENT_FOR_MOVE = (
    f"SELECT 1 FROM {_table(Experiment)} WHERE {_column(Experiment, 'id')} = %s FOR NO KEY UPDATE"
)
_LOCK_EXPERIMENT_FOR_NEW_RUN = f"SELECT 1 FROM {_table(Experiment)} WHERE {_column(Experiment, 'id')} = %s FOR SHARE"


def lock_experiment_for_move(experiment_pk: int) -> None:
    _execute(_LOCK_EXPERIMENT_FOR_MOVE, [experiment_pk])


def lock_experiment_for_new_run(experiment_pk: int) -> None:
    _execute(_LOCK_EXPERIMENT_FOR_NEW_RUN, [experiment_pk])


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
    A key already stored (or being stored by a concurrent writer, which this waits for) is left.
    Rows go in key order, the order their index entries are locked in: two writers of the same
    keys in different orders would otherwise deadlock on PostgreSQL."""
    inserted = set()
    for part in _slices(sorted(params), 3):
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
    """Set each (key, value) tag, replacing a stored value. Keys must be distinct. In key order,
    as insert_params, so two writers of the same tags in different orders never deadlock."""
    for part in _slices(sorted(tags), 3):
        sql = (
            f"INSERT INTO {_table(RunTag)} ({_column(RunTag, 'run')}, {_column(RunTag, 'key')}, "
            f"{_column(RunTag, 'value')}) VALUES {_rows(len(part), 3)} "
            f"ON CONFLICT ({_column(RunTag, 'run')}, {_column(RunTag, 'key')}) "
            f"DO UPDATE SET {_column(RunTag, 'value')} = excluded.{_column(RunTag, 'value')}"
        )
        _execute(sql, [v for key, value in part for v in (run_pk, key, value)])


# A metric row as the write path stores it: key, value (NULL for a NaN), timestamp, step, and
# the model id, dataset name and dataset digest the client sent (NULL when it sent none).
MetricRow = tuple[str, float | None, int, int, str | None, str | None, str | None]
_METRIC_FIELDS = ("run", "key", "value", "timestamp", "step", "model_id", "dataset_name", "dataset_digest")
_METRIC_COLUMNS = ", ".join(_column(Metric, name) for name in _METRIC_FIELDS)
# Most points name no model or dataset: their rows leave those three columns out (NULL).
_PLAIN_METRIC_COLUMNS = ", ".join(_column(Metric, name) for name in _METRIC_FIELDS[:5])
# From this many rows on, PostgreSQL takes a batch as one array per column, unnested: binding and
# parsing 5 placeholders a row cost more than the rows. The plain COPY this replaced could not
# skip a point already stored; COPY into a temporary table and INSERT … SELECT … ON CONFLICT
# could, but cost more than this (1,000 metrics, median of 30 on a shared 2-core VM: VALUES 15–32
# ms, COPY to a temporary table and insert 10–24 ms, unnest 8–20 ms, the old plain COPY 6–16 ms).
_UNNEST_FROM_ROWS = 50
# Stored points are skipped: a client's retry, or log_model re-logging the run's metrics for its
# model, stores each point once. No conflict target, so both unique indexes count (a NaN point's
# is partial, see Metric.Meta).
_INSERT_METRICS_UNNEST = (
    f"INSERT INTO {_table(Metric)} ({_METRIC_COLUMNS}) SELECT %s, * FROM unnest(%s::varchar[], "
    "%s::double precision[], %s::bigint[], %s::bigint[], %s::varchar[], %s::varchar[], %s::varchar[]) "
    "ON CONFLICT DO NOTHING"
)


def insert_metrics(run_pk: int, rows: Sequence[MetricRow]) -> None:
    """Append rows to the run's metric history, skipping any point already stored (the same key,
    step, timestamp and value; a NaN equals a NaN)."""
    if connection.vendor == "postgresql" and len(rows) >= _UNNEST_FROM_ROWS:
        _execute(_INSERT_METRICS_UNNEST, [run_pk, *(_pg_array(column) for column in zip(*rows, strict=True))])
        return
    plain = all(row[4] is None and row[5] is None and row[6] is None for row in rows)
    width = 5 if plain else 8
    columns = _PLAIN_METRIC_COLUMNS if plain else _METRIC_COLUMNS
    for part in _slices(rows, width):
        sql = f"INSERT INTO {_table(Metric)} ({columns}) VALUES {_rows(len(part), width)} ON CONFLICT DO NOTHING"
        _execute(sql, [v for row in part for v in (run_pk, *row[: width - 1])])


def _pg_array(values: Sequence) -> str:
    """PostgreSQL's text form of a one-dimensional array ('{"a","b",NULL}'), one parameter for
    a whole column; strings are quoted with their quotes and backslashes escaped."""
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        elif isinstance(value, str):
            items.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            items.append(repr(value))  # ints; floats as Python writes them, inf included
    return "{" + ",".join(items) + "}"


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


_LOG_CHILD_METRIC = (
    "WITH history AS (INSERT INTO {metric} ({metric_columns}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING), "
    "latest AS (INSERT INTO {latest} ({run}, {key}, {value}, {timestamp}, {step}) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT ({run}, {key}) DO UPDATE SET {value} = excluded.{value}, {timestamp} = excluded.{timestamp}, "
    "{step} = excluded.{step} WHERE {newer} RETURNING 1), "
    "stale AS (UPDATE {runs} SET {stale} = TRUE WHERE {id} = %s AND EXISTS (SELECT 1 FROM latest) RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM stale)"
).format(
    metric=_table(Metric),
    metric_columns=_PLAIN_METRIC_COLUMNS,
    latest=_table(LatestMetric),
    newer=_NEWER_THAN_STORED,
    runs=_table(Run),
    stale=_column(Run, "summary_stale"),
    id=_column(Run, "id"),
    **_LATEST_METRIC_COLUMNS,
)


def log_child_metric(run_pk: int, parent_pk: int, row: tuple[str, float | None, int, int]) -> bool:
    """PostgreSQL: one metric of a child run, all of it in one statement, the sweep's commonest
    call: its history row (skipped when the same point is stored: a retry); its latest value where
    newer (as upsert_latest_metrics); the parent's stale mark if the latest value changed (as
    summaries.mark_parents_stale does for one parent: the rows are locked in the same order).
    Returns whether the parent was marked. One statement is atomic on its own, so the call needs
    no BEGIN and COMMIT: 2 round trips instead of 6 (with the run's lookup)."""
    key, value, timestamp, step = row
    params = [run_pk, key, value, timestamp, step, run_pk, key, value, timestamp, step, parent_pk]
    return bool(_fetchall(_LOG_CHILD_METRIC, params)[0][0])


# --- reading runs back (MLflow's Run JSON) -----------------------------------------------------


# A page's run pks on PostgreSQL: one array, not an IN list, which PostgreSQL plans constant by
# constant (the four reads of a 984-run search page took 16 ms instead of 12). And the array
# comes out of an InitPlan rather than as a constant, for the same reason: PostgreSQL estimates a
# constant array element by element, 0.3-0.9 ms of planning per read at 984 runs even for a read
# that finds nothing; an unknown array is planned as an index probe per run, the right plan at
# any page size.
_ANY_RUN_PK = "= ANY((SELECT %s::bigint[])::bigint[])"


def _of_runs(select: str, table: str, run_column: str, run_pks: Sequence[int], order: str = "") -> list[tuple]:
    if not run_pks:
        return []
    if connection.vendor == "postgresql":
        return _fetchall(f"{select} FROM {table} WHERE {run_column} {_ANY_RUN_PK}{order}", [_pg_array(run_pks)])
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


# --- summaries: one parent's recompute, and the claims around it ---------------------------------
# The summary worker's hot path: every metric a child logs makes its parent's summary stale, and a
# refresh recomputes it from the children (tracker/summaries/computation.py has the rules). Built
# through the ORM, a 25-child parent's recompute spent ~85% of its 10 ms (SQLite) compiling 7
# small statements; these are the same statements, compiled once.

_SUMMARY_COLUMNS = {name: _column(RunSummary, name) for name in ("run", "key", "best_value", "best_run")}
_CHILD = {name: _column(Run, name) for name in ("id", "parent", "lifecycle_stage", "start_time", "run_id")}
_METRIC = {name: _column(LatestMetric, name) for name in ("run", "key", "value")}


def _bounded(value: str) -> str:
    """`value` where it lies strictly inside ±%s (the bound is a parameter), else 0 (not NULL:
    Django's STDDEV_POP for SQLite fails on a NULL)."""
    return f"CASE WHEN ({value} > %s AND {value} < %s) THEN {value} ELSE 0.0 END"


# The active children's own latest values (m), with the child (r): of the model's metrics, not
# the machine's (tracker/constants.py SYSTEM_METRIC_PREFIX), so no summary or best-child tag
# is ever built on a system metric. SUBSTR, not LIKE: SQLite's LIKE ignores case.
_NOT_SYSTEM_METRIC = f"SUBSTR(m.{_METRIC['key']}, 1, {len(SYSTEM_METRIC_PREFIX)}) <> '{SYSTEM_METRIC_PREFIX}'"
_OWN_VALUES = (
    f"FROM {_table(LatestMetric)} m JOIN {_table(Run)} r ON r.{_CHILD['id']} = m.{_METRIC['run']} "
    f"WHERE r.{_CHILD['parent']} = %s AND r.{_CHILD['lifecycle_stage']} = %s AND m.{_METRIC['value']} IS NOT NULL "
    f"AND {_NOT_SYSTEM_METRIC}"
)
_SUMMARY_SPREAD = (
    f"SELECT m.{_METRIC['key']}, COUNT(m.{_METRIC['value']}), MIN(m.{_METRIC['value']}), "
    f"MAX(m.{_METRIC['value']}), AVG({_bounded('m.' + _METRIC['value'])}), "
    f"STDDEV_POP({_bounded('m.' + _METRIC['value'])}) {_OWN_VALUES} GROUP BY m.{_METRIC['key']}"
)


def summary_spread(parent_pk: int, *, active: str, bound: float) -> list[tuple]:
    """(key, count, min, max, mean, std) over the active children's own latest values of each
    key (NULL, i.e. NaN, not counted); values at or past ±`bound` count as 0 in the mean and std,
    which the caller recomputes for those keys. (Django gives SQLite a STDDEV_POP.)"""
    return _fetchall(_SUMMARY_SPREAD, [-bound, bound, -bound, bound, parent_pk, active])


def summary_own_values(parent_pk: int, *, active: str, keys: Sequence[str]) -> list[tuple[str, float]]:
    """(key, value) of each active child's own latest value of `keys` (NULLs left out)."""
    if not keys:
        return []
    in_keys = f"m.{_METRIC['key']} IN ({_placeholders(len(keys))})"
    sql = f"SELECT m.{_METRIC['key']}, m.{_METRIC['value']} {_OWN_VALUES} AND {in_keys}"
    return _fetchall(sql, [parent_pk, active, *keys])


def _ranked(key: str, value: str, run: str, source: str) -> str:
    """The first row in each direction of `value` per `key`, ties to the earliest start (unknown
    last), then the run id: (key, lowest, highest, value, run pk, start time, run id)."""
    ties = f"r.{_CHILD['start_time']} ASC NULLS LAST, r.{_CHILD['run_id']} ASC"
    return (
        f"SELECT * FROM (SELECT {key} AS metric_key, "
        f"ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {value} ASC, {ties}) AS lowest, "
        f"ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {value} DESC, {ties}) AS highest, "
        f"{value} AS value, {run} AS run_pk, r.{_CHILD['start_time']} AS start_time, "
        f"r.{_CHILD['run_id']} AS run_uuid {source}) ranked "
        "WHERE lowest = 1 OR highest = 1"
    )


# The candidates for each key's best: the children's own latest values, and the bests of the
# children's own summaries (which cover their subtrees), in one round trip.
_SUMMARY_CANDIDATES = " UNION ALL ".join(
    [
        _ranked(f"m.{_METRIC['key']}", f"m.{_METRIC['value']}", f"m.{_METRIC['run']}", _OWN_VALUES),
        _ranked(
            f"s.{_SUMMARY_COLUMNS['key']}",
            f"s.{_SUMMARY_COLUMNS['best_value']}",
            f"s.{_SUMMARY_COLUMNS['best_run']}",
            f"FROM {_table(RunSummary)} s JOIN {_table(Run)} c ON c.{_CHILD['id']} = s.{_SUMMARY_COLUMNS['run']} "
            f"JOIN {_table(Run)} r ON r.{_CHILD['id']} = s.{_SUMMARY_COLUMNS['best_run']} "
            f"WHERE c.{_CHILD['parent']} = %s AND c.{_CHILD['lifecycle_stage']} = %s "
            f"AND s.{_SUMMARY_COLUMNS['best_value']} IS NOT NULL",
        ),
    ]
)


def summary_candidates(parent_pk: int, *, active: str) -> list[tuple[str, int, int, float, int, int | None, str]]:
    """(key, lowest, highest, value, run pk, start time, run id): for each key, the lowest and the
    highest of the active children's own values and of their summaries' bests (lowest or highest
    is 1 on the row that is first that way), so at most four rows a key however many children."""
    return _fetchall(_SUMMARY_CANDIDATES, [parent_pk, active, parent_pk, active])


_POINT = {name: _column(Metric, name) for name in ("run", "key", "dataset_name")}
# Through the partial index of points logged with a dataset (migration 0015): a sweep that logged
# none costs a probe of an empty index.
_CHILDREN_DATASET_KEYS = (
    f"SELECT DISTINCT p.{_POINT['key']} FROM {_table(Metric)} p "
    f"JOIN {_table(Run)} r ON r.{_CHILD['id']} = p.{_POINT['run']} "
    f"WHERE r.{_CHILD['parent']} = %s AND r.{_CHILD['lifecycle_stage']} = %s AND p.{_POINT['dataset_name']} IS NOT NULL"
)


def children_dataset_keys(parent_pk: int, *, active: str) -> list[str]:
    """The keys the active children of `parent_pk` logged some point of with a dataset."""
    return [key for (key,) in _fetchall(_CHILDREN_DATASET_KEYS, [parent_pk, active])]


_SUMMARY_WRITE_FIELDS = [field for field in RunSummary._meta.concrete_fields if field.attname != "id"]
_SUMMARY_UPSERT = (
    "INSERT INTO {table} ({columns}) VALUES {{rows}} ON CONFLICT ({run}, {key}) DO UPDATE SET {assignments}"
).format(
    table=_table(RunSummary),
    columns=", ".join(f'"{field.column}"' for field in _SUMMARY_WRITE_FIELDS),
    run=_SUMMARY_COLUMNS["run"],
    key=_SUMMARY_COLUMNS["key"],
    assignments=", ".join(
        f'"{field.column}" = excluded."{field.column}"'
        for field in _SUMMARY_WRITE_FIELDS
        if field.attname not in ("run_id", "key")
    ),
)


def write_summaries(run_pk: int, summaries: Sequence[RunSummary]) -> None:
    """Make `summaries` (unsaved, all of `run_pk`) the run's summary rows: delete its keys not
    among them, insert or overwrite the rest."""
    keys = [summary.key for summary in summaries]
    delete = f"DELETE FROM {_table(RunSummary)} WHERE {_SUMMARY_COLUMNS['run']} = %s"
    if keys:
        delete += f" AND {_SUMMARY_COLUMNS['key']} NOT IN ({_placeholders(len(keys))})"
    _execute(delete, [run_pk, *keys])
    width = len(_SUMMARY_WRITE_FIELDS)
    for part in _slices(summaries, width):
        values = [
            field.get_db_prep_save(getattr(summary, field.attname), connection)
            for summary in part
            for field in _SUMMARY_WRITE_FIELDS
        ]
        _execute(_SUMMARY_UPSERT.format(rows=_rows(len(part), width)), values)


_RUN_COLUMNS = {name: _column(Run, name) for name in ("id", "path", "experiment", "summary_stale", "summary_queued")}
_LOCK_RUNS = "SELECT {id} FROM {table} WHERE {id} IN ({{pks}}) ORDER BY {id}".format(
    table=_table(Run), id=_RUN_COLUMNS["id"]
)


def lock_runs(pks: Sequence[int]) -> None:
    """PostgreSQL: take the row locks of `pks` in id order, the order every writer takes them in.
    (SQLite has one writer at a time and no row locks.) Inside a transaction."""
    if connection.vendor == "postgresql":
        _fetchall(_LOCK_RUNS.format(pks=_placeholders(len(pks))) + " FOR UPDATE", list(pks))


_CLAIM_SUMMARY = f"UPDATE {_table(Run)} SET {_RUN_COLUMNS['summary_stale']} = FALSE WHERE {_RUN_COLUMNS['id']} = %s"


def claim_summary(run_pk: int, *, only_if_stale: bool) -> bool:
    """Clear `run_pk`'s stale mark; False if there is no such run or, with `only_if_stale`, it was
    not stale (another worker claimed it first)."""
    sql = _CLAIM_SUMMARY + (f" AND {_RUN_COLUMNS['summary_stale']}" if only_if_stale else "")
    return _execute(sql, [run_pk]) == 1


_CLAIM_TREE_REFRESH = (
    f"UPDATE {_table(Run)} SET {_RUN_COLUMNS['summary_queued']} = TRUE "
    f"WHERE {_RUN_COLUMNS['id']} = %s AND NOT {_RUN_COLUMNS['summary_queued']}"
)
_RELEASE_TREE_REFRESH = (
    f"UPDATE {_table(Run)} SET {_RUN_COLUMNS['summary_queued']} = FALSE WHERE {_RUN_COLUMNS['id']} = %s"
)


def claim_tree_refresh(root_pk: int) -> bool:
    """Set the root's `summary_queued` flag; True for the one caller that found it clear."""
    return _execute(_CLAIM_TREE_REFRESH, [root_pk]) == 1


def release_tree_refresh(root_pk: int) -> None:
    """Clear the root's `summary_queued` flag (its refresh task found nothing left to do)."""
    _execute(_RELEASE_TREE_REFRESH, [root_pk])


_STALE_IN_TREE = (
    f"SELECT {_RUN_COLUMNS['id']}, {_RUN_COLUMNS['path']}, {_RUN_COLUMNS['experiment']} FROM {_table(Run)} "
    f"WHERE {_RUN_COLUMNS['path']} LIKE %s AND {_RUN_COLUMNS['summary_stale']}"
)


def stale_in_tree(root_segment: str) -> list[tuple[int, str, int]]:
    """(pk, path, experiment id) of the stale runs whose path starts with `root_segment` (digits)."""
    return _fetchall(_STALE_IN_TREE, [root_segment + "%"])


# --- the live pages' "what changed" check --------------------------------------------------------

# Every open tree page asks this every few seconds while a sweep runs, so it is one statement,
# compiled once, and each part reads a small index rather than the experiment's runs (a count over
# a million-run experiment took 0.8 s): the newest run id (index experiment, id); the deleted runs
# (a partial index); the RUNNING runs (a partial index: their count, the sum of their ids, which
# moves when one starts or ends, and their latest metrics: count, newest timestamp, sum of steps,
# which a new point moves); and the stale summaries (a partial index: the count falls back when a
# refresh lands). A status change between two finished states is not a live event and is not seen.
_LIVE_RUNS, _LIVE_METRICS = (_table(model) for model in (Run, LatestMetric))
_LIVE_RUN = {name: _column(Run, name) for name in ("id", "experiment", "lifecycle_stage", "status", "end_time")}
_LIVE_RUN["summary_stale"] = _column(Run, "summary_stale")
_LIVE_SUMMARIES = _table(RunSummary)
# Steps are summed modulo a prime: MLflow takes any int64 step (nanosecond timestamps are common),
# and SQLite's SUM raises on overflow past 2^63, which turned every live page into an error.
_STEP_MARKER_MODULUS = 1_000_000_007
_LIVE_VERSION = (
    f"SELECT (SELECT MAX(r.{_LIVE_RUN['id']}) FROM {_LIVE_RUNS} r WHERE r.{_LIVE_RUN['experiment']} = %s), "
    f"(SELECT COUNT(*) FROM {_LIVE_RUNS} r WHERE r.{_LIVE_RUN['experiment']} = %s "
    f"AND r.{_LIVE_RUN['lifecycle_stage']} = %s), "
    f"(SELECT COUNT(*) || '.' || COALESCE(SUM(r.{_LIVE_RUN['id']}), 0) FROM {_LIVE_RUNS} r "
    f"WHERE r.{_LIVE_RUN['experiment']} = %s AND r.{_LIVE_RUN['status']} = %s), "
    f"(SELECT COUNT(*) || '.' || COALESCE(MAX(m.{_column(LatestMetric, 'timestamp')}), 0) || '.' "
    f"|| COALESCE(SUM(m.{_column(LatestMetric, 'step')} %% {_STEP_MARKER_MODULUS}), 0) "
    f"FROM {_LIVE_METRICS} m JOIN {_LIVE_RUNS} mr "
    f"ON m.{_column(LatestMetric, 'run')} = mr.{_LIVE_RUN['id']} "
    f"WHERE mr.{_LIVE_RUN['experiment']} = %s AND mr.{_LIVE_RUN['status']} = %s), "
    f"(SELECT COUNT(*) FROM {_LIVE_RUNS} r WHERE r.{_LIVE_RUN['summary_stale']} "
    f"AND r.{_LIVE_RUN['experiment']} = %s)"
)


def live_version(experiment_id: int, *, deleted: str, running: str) -> tuple:
    """The experiment's change markers (see _LIVE_VERSION); the 3rd is "count.sum of ids" of its
    runs in `running` status. `deleted` and `running` are the lifecycle and status values."""
    params = [experiment_id, experiment_id, deleted, experiment_id, running, experiment_id, running, experiment_id]
    return _fetchall(_LIVE_VERSION, params)[0]


# The run page's markers, as above for one run: its status and end, its latest metrics, its
# direct children (count, newest, running, ended), its summaries and its param importance fits
# (the worker's, which may land after the sweep's last write). Compare sweeps watches its parents
# with the same markers, each run's in one row of one statement.
_RUNS_LIVE_VERSIONS = (
    f"SELECT r.{_column(Run, 'run_id')}, r.{_LIVE_RUN['status']}, r.{_LIVE_RUN['end_time']}, "
    f"(SELECT COUNT(*) || '.' || COALESCE(MAX(m.{_column(LatestMetric, 'timestamp')}), 0) || '.' "
    f"|| COALESCE(SUM(m.{_column(LatestMetric, 'step')} %% {_STEP_MARKER_MODULUS}), 0) FROM {_LIVE_METRICS} m "
    f"WHERE m.{_column(LatestMetric, 'run')} = r.{_LIVE_RUN['id']}), "
    f"(SELECT COUNT(*) || '.' || COALESCE(MAX(c.{_LIVE_RUN['id']}), 0) || '.' "
    f"|| SUM(CASE WHEN c.{_LIVE_RUN['status']} = %s THEN 1 ELSE 0 END) || '.' || COUNT(c.{_LIVE_RUN['end_time']}) "
    f"FROM {_LIVE_RUNS} c WHERE c.{_column(Run, 'parent')} = r.{_LIVE_RUN['id']}), "
    f"(SELECT MAX(s.{_column(RunSummary, 'computed_at')}) FROM {_LIVE_SUMMARIES} s "
    f"WHERE s.{_column(RunSummary, 'run')} = r.{_LIVE_RUN['id']}), "
    f"(SELECT MAX(i.{_column(ParamImportance, 'computed_at')}) FROM {_table(ParamImportance)} i "
    f"WHERE i.{_column(ParamImportance, 'run')} = r.{_LIVE_RUN['id']}), "
    f"(SELECT COUNT(*) FROM {_LIVE_RUNS} c WHERE c.{_column(Run, 'parent')} = r.{_LIVE_RUN['id']} "
    f"AND c.{_LIVE_RUN['status']} = %s) "
    f"FROM {_LIVE_RUNS} r WHERE r.{_column(Run, 'run_id')} IN "
)


def runs_live_versions(run_ids: Sequence[str], *, running: str) -> dict[str, tuple]:
    """Each found run's change markers (see _RUNS_LIVE_VERSIONS) by run id; the first marker is
    its status and the last its number of RUNNING children. One statement; only the number of
    placeholders varies."""
    if not run_ids:
        return {}
    placeholders = "(" + ", ".join(["%s"] * len(run_ids)) + ")"
    rows = _fetchall(_RUNS_LIVE_VERSIONS + placeholders, [running, running, *run_ids])
    return {row[0]: row[1:] for row in rows}


# --- an experiment's summary keys -----------------------------------------------------------------

# The distinct keys of an experiment's summaries, without reading all of them (a million-run
# experiment has ~20,000): walk the distinct keys of the (key, best_value) index one step at a time
# (a "skip scan": a handful of index probes, as there are few metric keys), and keep each key that
# one summary of this experiment has. The probe is a LIMIT 1 subquery, not EXISTS: PostgreSQL
# turns an EXISTS into a join over every summary of the experiment (0.1 s at a million runs), and
# a LIMIT 1 stops at the first summary found (under 1 ms).
_SUMMARY = {name: _column(RunSummary, name) for name in ("key", "run")}
_SUMMARY_KEYS = (
    f"WITH RECURSIVE keys(k) AS ("
    f"SELECT MIN({_SUMMARY['key']}) FROM {_table(RunSummary)} "
    f"UNION ALL SELECT (SELECT MIN({_SUMMARY['key']}) FROM {_table(RunSummary)} WHERE {_SUMMARY['key']} > keys.k) "
    f"FROM keys WHERE keys.k IS NOT NULL) "
    f"SELECT k FROM keys WHERE k IS NOT NULL AND (SELECT 1 FROM {_table(RunSummary)} s "
    f"JOIN {_table(Run)} r ON r.{_column(Run, 'id')} = s.{_SUMMARY['run']} "
    f"WHERE s.{_SUMMARY['key']} = keys.k AND r.{_column(Run, 'experiment')} = %s LIMIT 1) = 1 ORDER BY k"
)


def summary_keys(experiment_id: int) -> list[str]:
    """The metric keys the experiment's runs have summaries of, in order (see _SUMMARY_KEYS)."""
    return [key for (key,) in _fetchall(_SUMMARY_KEYS, [experiment_id])]


# --- MLflow 3: metrics logged for a model ------------------------------------------------------


def logged_model_pks(model_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """model_id -> (pk, lifecycle stage) of each known logged model among `model_ids`."""
    if not model_ids:
        return {}
    sql = (
        f"SELECT {_column(LoggedModel, 'model_id')}, {_column(LoggedModel, 'id')}, "
        f"{_column(LoggedModel, 'lifecycle_stage')} FROM {_table(LoggedModel)} "
        f"WHERE {_column(LoggedModel, 'model_id')} IN ({_placeholders(len(model_ids))})"
    )
    return {model_id: (pk, stage) for model_id, pk, stage in _fetchall(sql, list(model_ids))}


_LMM_FIELDS = ("model", "run", "key", "value", "timestamp", "step", "dataset_name", "dataset_digest")


def insert_logged_model_metrics(rows: Sequence[tuple[int, int, str, float | None, int, int, str | None, str | None]]):
    """Add (model pk, run pk, key, value, timestamp, step, dataset name, dataset digest) rows to
    the models' metrics, skipping points already stored (a retry, or log_model's re-log)."""
    columns = ", ".join(_column(LoggedModelMetric, name) for name in _LMM_FIELDS)
    for part in _slices(rows, len(_LMM_FIELDS)):
        sql = (
            f"INSERT INTO {_table(LoggedModelMetric)} ({columns}) VALUES {_rows(len(part), len(_LMM_FIELDS))} "
            "ON CONFLICT DO NOTHING"
        )
        _execute(sql, [value for row in part for value in row])


# --- MLflow 3: a run's inputs and outputs (runs/get, runs/search) --------------------------------


def _qualified(model, name: str) -> str:
    return f"{_table(model)}.{_column(model, name)}"


def _joined(model, link: str, target) -> str:
    return f"{_table(model)} JOIN {_table(target)} ON {_qualified(target, 'id')} = {_qualified(model, link)}"


_NULLS = ", ".join(["NULL"] * 7)
# One query for the three kinds, padded with NULLs to one shape, so runs/get and a runs/search
# page pay one round trip for them however many runs and inputs there are:
# (run pk, kind, model_id, step, name, digest, source_type, source, schema, profile, tags, row id).
_DATASET_COLUMNS = ", ".join(_qualified(Dataset, name) for name in ("name", "digest", "source_type", "source"))
_DATASET_INPUTS = (
    # The first branch sets the columns' types (PostgreSQL resolves a NULL there as text).
    f"SELECT {_qualified(RunDatasetInput, 'run')}, 'dataset', CAST(NULL AS VARCHAR), CAST(NULL AS BIGINT), "
    f"{_DATASET_COLUMNS}, "
    f"{_qualified(Dataset, 'schema')}, {_qualified(Dataset, 'profile')}, {_qualified(RunDatasetInput, 'tags')}, "
    f"{_qualified(RunDatasetInput, 'id')} FROM {_joined(RunDatasetInput, 'dataset', Dataset)} "
    f"WHERE {_qualified(RunDatasetInput, 'run')} "
)
_MODEL_INPUTS = (
    f"SELECT {_qualified(RunModelInput, 'run')}, 'model_input', {_qualified(LoggedModel, 'model_id')}, NULL, "
    f"{_NULLS}, {_qualified(RunModelInput, 'id')} FROM {_joined(RunModelInput, 'model', LoggedModel)} "
    f"WHERE {_qualified(RunModelInput, 'run')} "
)
_MODEL_OUTPUTS = (
    f"SELECT {_qualified(RunModelOutput, 'run')}, 'model_output', {_qualified(LoggedModel, 'model_id')}, "
    f"{_qualified(RunModelOutput, 'step')}, {_NULLS}, {_qualified(RunModelOutput, 'id')} "
    f"FROM {_joined(RunModelOutput, 'model', LoggedModel)} WHERE {_qualified(RunModelOutput, 'run')} "
)
_INPUT_TAGS = RunDatasetInput._meta.get_field("tags")


def inputs_and_outputs_of(run_pks: Sequence[int]) -> list[tuple]:
    """(run pk, kind, model_id, step, name, digest, source_type, source, schema, profile, tags)
    of each dataset input ('dataset'), model input ('model_input') and model output
    ('model_output') of `run_pks`, each kind in the order it was logged; tags decoded."""
    if not run_pks:
        return []
    rows = []
    if connection.vendor == "postgresql":
        sql = " UNION ALL ".join(part + _ANY_RUN_PK for part in (_DATASET_INPUTS, _MODEL_INPUTS, _MODEL_OUTPUTS))
        rows = _fetchall(sql + " ORDER BY 12", [_pg_array(run_pks)] * 3)
    else:
        for part in _slices(run_pks, 3):
            condition = f"IN ({_placeholders(len(part))})"
            sql = " UNION ALL ".join(p + condition for p in (_DATASET_INPUTS, _MODEL_INPUTS, _MODEL_OUTPUTS))
            rows += _fetchall(sql + " ORDER BY 12", list(part) * 3)
    return [(*row[:10], _INPUT_TAGS.from_db_value(row[10], None, connection) if row[10] else []) for row in rows]
