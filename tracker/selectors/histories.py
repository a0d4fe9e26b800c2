"""Metric histories for the charts, read so that a long history never loads point by point.

A key's history up to LOAD_LIMIT points is read as it is, and the page thins it keeping its
extremes (dashboard/downsample.py). A longer one (a run of 1,000,000 steps) is reduced in SQL
first: its steps are cut into equal buckets and each bucket sends its minimum, its maximum and
whether it held a NaN or an infinity, so a spike survives and the rows that travel are a few
thousand whatever the history's length. Where inside a bucket its minimum and maximum fell is
not read (that would cost a second pass over the rows): the minimum is drawn at the bucket's
first step and the maximum at its last. A bucket is at most 1/BUCKETS_PER_POINT of a chart
point wide, and a zoom reads the zoomed range again, exactly once it is short enough.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter

from django.db import connection
from django.db.models import Count, F, FloatField, Max, Min, OuterRef, QuerySet, Subquery
from django.db.models.functions import Cast, Coalesce

from tracker.models import Metric, Run
from tracker.series import (
    DATASET_SEPARATOR,
    DatasetValue,
    in_series,
    latest_on_each_dataset,
    series_key,
    series_name,
)

# Read as it is up to this many points of one key (about 30 ms on PostgreSQL per 50,000 rows);
# beyond, reduced to buckets in SQL.
LOAD_LIMIT = 50_000
# Buckets per point of the chart's budget: two extremes per bucket, four candidates a point,
# as MinMaxLTTB's own preselection takes.
BUCKETS_PER_POINT = 2
# A bigint's largest value, which the bucket arithmetic must not pass (_bucketed).
INT64_MAX = 2**63 - 1


@dataclass
class Series:
    """One key's history of one run in step order. A NaN is None (as stored); ±inf is a float."""

    steps: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    total: int = 0  # points logged in the range read, whatever was sent
    bucketed: bool = False  # reduced in SQL: each bucket's min and max

    def add(self, step: int, timestamp: int, value: float | None) -> None:
        self.steps.append(step)
        self.timestamps.append(timestamp)
        self.values.append(value)


@dataclass(frozen=True)
class KeyStats:
    count: int
    first_step: int
    last_step: int


def series_points(run: Run, name: str) -> QuerySet:
    """The points of series `name` of `run`."""
    return in_series(Metric.objects.filter(run=run), name)


@dataclass(frozen=True)
class HistoryStats:
    series: dict[str, KeyStats]  # each series with a history worth a chart, by name
    split_keys: list[str]  # the keys logged on several datasets: a series each


def history_stats(run: Run) -> HistoryStats:
    """Each series of `run` with a history worth a chart → its point count and step range (one
    query; a second only when a key was logged on several datasets). A series is a key's points,
    or one dataset's of a key logged on several (see series_name). A history is one that
    changes: logged at more than one step, or with more than one value at a step (a loop that
    logs without a step puts every point at 0, and its chart reads them by time). The same value
    logged again at the same step is no history: mlflow.evaluate logs each of its metrics twice,
    which drew a dozen charts of one dot each. Nor is one value per dataset (a model's train and
    test scores at step 0)."""
    # By key alone first: grouping a million points by key and dataset took 320 ms against 130.
    grouped = _group_stats(
        Metric.objects.filter(run=run),
        "key",
        with_dataset=Count("dataset_name"),
        first_dataset=Min("dataset_name"),
        last_dataset=Max("dataset_name"),
    )
    by_key = {group["key"]: group for group in grouped}
    split = [
        key
        for key, group in by_key.items()
        if group["first_dataset"] != group["last_dataset"] or 0 < group["with_dataset"] < group["n"]
    ]
    named = {key: group for key, group in by_key.items() if key not in split}
    if split:
        for group in _group_stats(Metric.objects.filter(run=run, key__in=split), "key", "dataset_name"):
            named[series_name(group["key"], group["dataset_name"])] = group
    series = {
        name: KeyStats(group["n"], group["lo"], group["hi"])
        for name, group in sorted(named.items())
        if group["n"] > 1 and (group["hi"] > group["lo"] or _varies(group))
    }
    return HistoryStats(series, sorted(split))


def latest_per_dataset(run: Run, keys: list[str]) -> dict[str, list[DatasetValue]]:
    """For each of `keys` (keys logged on several datasets), its latest value on each dataset:
    the latest step, then timestamp, as a run's latest metric is chosen (one query, none for
    no keys)."""
    if not keys:
        return {}
    found: dict[str, list[DatasetValue]] = defaultdict(list)
    for _, key, dataset_value in latest_on_each_dataset(Metric.objects.filter(run=run, key__in=keys)):
        found[key].append(dataset_value)
    return dict(found)


def _group_stats(points: QuerySet, *columns: str, **more) -> QuerySet:
    """Per group of `columns`, a dict of those columns, the point count, step range and value
    range (and `more`)."""
    ranges = {"lo": Min("step"), "hi": Max("step"), "low_value": Min("value"), "high_value": Max("value")}
    return points.values(*columns).annotate(n=Count("pk"), **ranges, **more).order_by()


def _varies(group: dict) -> bool:
    low, high = group["low_value"], group["high_value"]  # None: every value NaN
    return low is not None and high is not None and high > low


def run_histories(run: Run, stats: dict[str, KeyStats], *, budget: int) -> dict[str, Series]:
    """The history of every series in `stats`: the short ones in one query, each long one (over
    LOAD_LIMIT points) in one bucketed query of its own."""
    short = [name for name, stat in stats.items() if stat.count <= LOAD_LIMIT]
    found: dict[str, Series] = {name: Series(total=stats[name].count) for name in short}
    if short:
        split = {series_key(name) for name in stats if DATASET_SEPARATOR in name}
        keys = {series_key(name) for name in short}
        points = Metric.objects.filter(run=run, key__in=keys).order_by("key", "step", "timestamp")
        for key, dataset_name, step, timestamp, value in points.values_list(
            "key", "dataset_name", "step", "timestamp", "value"
        ).iterator(chunk_size=10_000):
            series = found.get(series_name(key, dataset_name) if key in split else key)
            if series is not None:  # not one dataset's single value, nor a long series read below
                series.add(step, timestamp, value)
    for name in stats:
        if name not in found:
            bounds = (stats[name].first_step, stats[name].last_step)
            found[name] = _bucketed(series_points(run, name), budget * BUCKETS_PER_POINT, bounds=bounds)[run.pk]
    return found


# A zoom's edges compare with a point's step, its wall-clock timestamp (epoch ms), or its time
# since its run's start (ms, "elapsed"; each run of a comparison from its own start).
RANGE_COLUMNS = ("step", "timestamp", "elapsed")


def _run_origin(run: str) -> Coalesce:
    """Where a run's relative time counts from, as an expression over the run reached by the
    lookup path `run` ("" on a Run queryset, "run__" on a Metric one): its start time, or for a
    run without one (imported from a store that lacked it) its first logged point. The one
    home of the rule, for the x values (time_origins) and a zoom's filter (within) alike."""
    first = Metric.objects.filter(run=OuterRef("run" if run else "pk")).order_by().values("run")
    return Coalesce(F(f"{run}start_time"), Subquery(first.annotate(first=Min("timestamp")).values("first")[:1]))


def time_origins(start_times: dict[int, int | None]) -> dict[int, int]:
    """Run pk → where its relative time counts from (see _run_origin), given the runs' start
    times: no query unless a run has none."""
    origins = {pk: start for pk, start in start_times.items() if start is not None}
    missing = [pk for pk in start_times if pk not in origins]
    if missing:
        found = Run.objects.filter(pk__in=missing).annotate(origin=_run_origin("")).values_list("pk", "origin")
        origins.update({pk: origin or 0 for pk, origin in found})
    return origins


def within(points: QuerySet, low=None, high=None, by: str = "step", *, every_run_started: bool = False) -> QuerySet:
    """`points` (Metric) between `low` and `high` (inclusive; either may be None) of `by`, one of
    RANGE_COLUMNS: what a zoomed chart reads. `every_run_started`: the points' runs all have a
    start time, so elapsed time needs no fallback (see _run_origin)."""
    if by == "elapsed":
        # The fallback's subquery, though rarely run, is costed for every point: on a history of
        # 200,000 points PostgreSQL's estimate passed its JIT threshold, and compiling took a
        # relative-time zoom from 106 ms to 750 (2026-12-05). Without it, a join to the run.
        origin = F("run__start_time") if every_run_started else _run_origin("run__")
        # In double precision: a timestamp near -2^63 less a start time in epoch ms is past
        # what a bigint holds, and PostgreSQL refuses the query. Exact for every epoch-ms
        # timestamp below 2^53 (the year 285,000).
        points = points.alias(elapsed=Cast("timestamp", FloatField()) - Cast(origin, FloatField()))
    if low is not None:
        points = points.filter(**{f"{by}__gte": low})
    if high is not None:
        points = points.filter(**{f"{by}__lte": high})
    return points


def history_range(run: Run, name: str, *, budget: int, low=None, high=None, by: str = "step") -> Series:
    """One series' history of `run` (a key's, or one dataset's: series_name) between `low` and
    `high` of `by` (see within): what a zoomed run-page chart fetches. Exact when the range holds
    at most LOAD_LIMIT points; bucketed otherwise. Two queries."""
    points = within(series_points(run, name), low, high, by, every_run_started=run.start_time is not None)
    total = points.count()
    if total > LOAD_LIMIT:
        return _bucketed(points, budget * BUCKETS_PER_POINT).get(run.pk, Series())
    series = Series(total=total)
    for step, timestamp, value in points.order_by("step", "timestamp").values_list("step", "timestamp", "value"):
        series.add(step, timestamp, value)
    return series


def selection_histories(
    selection: QuerySet, name: str, *, per_run: int, low=None, high=None, by: str = "step"
) -> dict[int, Series]:
    """Run pk → its history of series `name` (a key, or one dataset's of a key: series_name;
    between `low` and `high` of `by` when given, see within), for the compare page (two
    queries, three for a range of relative time): read as it is when the selection's points
    number at most LOAD_LIMIT × 4, else bucketed per run to about `per_run` points each."""
    zoomed_in_time = by == "elapsed" and (low is not None or high is not None)
    started = not zoomed_in_time or not selection.filter(start_time__isnull=True).exists()
    runs_points = in_series(Metric.objects.filter(run__in=selection.order_by().values("pk")), name)
    points = within(runs_points, low, high, by, every_run_started=started)
    if points.count() > LOAD_LIMIT * 4:
        return _bucketed(points, max(per_run // 2, 1))
    rows = points.order_by("run_id", "step", "timestamp").values_list("run_id", "step", "timestamp", "value")
    # Up to 200,000 rows: read by the cursor and cut into runs by columns, not an ORM row and
    # three appends a point (half of a 10,000-run history request went there).
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    found: dict[int, Series] = {}
    for run_pk, run_rows in groupby(fetched, key=itemgetter(0)):
        _, steps, timestamps, values = zip(*run_rows, strict=True)
        found[run_pk] = Series(list(steps), list(timestamps), list(values), total=len(steps))
    return found


def _bucketed(points: QuerySet, buckets: int, *, bounds: tuple[int, int] | None = None) -> dict[int, Series]:
    """Each run's history in `points` (a Metric queryset: one key, filtered as the caller
    needs) cut into `buckets` equal step ranges, one row per bucket (the module's docstring
    says how it is drawn). The filter is the ORM's, compiled into a derived table that both
    databases flatten into the aggregate's scan. `bounds` (first and last step), when the
    caller knows them for every run, saves reading the rows twice: a million-step history
    costs one pass instead of two."""
    selected = points.order_by().values(
        point_run=F("run_id"), point_step=F("step"), point_time=F("timestamp"), point_value=F("value")
    )
    inner, inner_params = selected.query.sql_with_params()
    extremes = """MIN(p.point_step), MAX(p.point_step), MIN(p.point_time), MAX(p.point_time),
                  MIN(p.point_value), MAX(p.point_value), COUNT(*), COUNT(p.point_value)"""
    # Integer division on both databases (bigint operands): bucket 0 … buckets-1 per run. A
    # range whose steps × buckets would overflow a bigint (nanosecond clocks as steps; MLflow
    # takes any int64, -2^63 … 2^63-1) is measured in units of 2^shift steps instead, few
    # enough that nothing overflows (see _unit_shift).
    # Written into the SQL, not a parameter: PostgreSQL's `>>` takes an int4, not a bigint.
    shift = _unit_shift(buckets)
    if bounds is not None:
        first, last = bounds
        if (last - first + 1) * buckets <= INT64_MAX:
            bucket, bucket_params = "(p.point_step - %s) * %s / %s", [first, buckets, last - first + 1]
        else:
            units = (last >> shift) - (first >> shift) + 1
            bucket = f"((p.point_step >> {shift}) - %s) * %s / %s"
            bucket_params = [first >> shift, buckets, units]
        sql = f"""
            SELECT p.point_run, {bucket} AS bucket, {extremes}
            FROM ({inner}) p
            GROUP BY p.point_run, bucket
            ORDER BY p.point_run, bucket
        """
        return _series_of(sql, [*bucket_params, *inner_params])
    # Each run's unit: one step (shift 0, the exact division above), or 2^shift steps when its
    # range is too wide, judged on the shifted range so that the test cannot overflow: under
    # `narrow` units of 2^shift, steps × buckets fits. The CTE is computed once on PostgreSQL:
    # inlined, its per-run arithmetic was repeated for every point, and on a table not yet
    # analysed (a fresh database's first long run) it was planned as the inner side of a nested
    # loop, the bounds aggregated again for every point (minutes for 50,000 points).
    narrow = (INT64_MAX // buckets) >> shift
    materialized = "MATERIALIZED " if connection.vendor == "postgresql" else ""
    sql = f"""
        WITH bounds AS {materialized}(
            SELECT r.run, r.shift, r.lo >> r.shift AS first, (r.hi >> r.shift) - (r.lo >> r.shift) + 1 AS units
            FROM (
                SELECT q.point_run AS run, MIN(q.point_step) AS lo, MAX(q.point_step) AS hi,
                       CASE WHEN (MAX(q.point_step) >> {shift}) - (MIN(q.point_step) >> {shift}) < %s
                            THEN 0 ELSE {shift} END AS shift
                FROM ({inner}) q GROUP BY q.point_run
            ) r
        )
        SELECT p.point_run, ((p.point_step >> b.shift) - b.first) * %s / b.units AS bucket, {extremes}
        FROM ({inner}) p JOIN bounds b ON b.run = p.point_run
        GROUP BY p.point_run, bucket
        ORDER BY p.point_run, bucket
    """
    return _series_of(sql, [narrow, *inner_params, buckets, *inner_params])


def _unit_shift(buckets: int) -> int:
    """How far a wide range's steps are shifted right (an arithmetic shift, a floor division
    by a power of two, in Python and both databases alike) so that any int64 range, counted in
    units of 2^shift steps, times `buckets` fits a bigint: under 2^(64-shift) units, times
    fewer than 2^bit_length buckets, is under 2^63. A wide range's bucket spans hundreds of
    billions of steps (over 2^63 / buckets²); a unit of 2^13 at a run page's 4,000 buckets
    moves its edges by less than that. Shifting keeps the steps' order, so the first step is
    in bucket 0, the last in the last, and every bucket in step order."""
    return buckets.bit_length() + 1


def _series_of(sql: str, params: list) -> dict[int, Series]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found: dict[int, Series] = defaultdict(lambda: Series(bucketed=True))
    for run_pk, _, first, last, first_ts, last_ts, low_value, high_value, count, numbers in rows:
        series = found[run_pk]
        series.total += count
        if numbers < count:  # a NaN somewhere in the bucket: marked at its first step
            series.add(first, first_ts, None)
        if low_value is not None:
            series.add(first, first_ts, low_value)
            if high_value != low_value:
                series.add(last, last_ts, high_value)
    return dict(found)
