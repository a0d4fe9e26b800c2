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

from django.db import connection
from django.db.models import Count, Max, Min, QuerySet

from tracker.models import Metric, Run

# Read as it is up to this many points of one key (about 30 ms on PostgreSQL per 50,000 rows);
# beyond, reduced to buckets in SQL.
LOAD_LIMIT = 50_000
# Buckets per point of the chart's budget: two extremes per bucket, four candidates a point,
# as MinMaxLTTB's own preselection takes.
BUCKETS_PER_POINT = 2


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


def history_stats(run: Run) -> dict[str, KeyStats]:
    """Each key `run` logged at more than one step → its point count and step range (one query)."""
    rows = (
        Metric.objects.filter(run=run)
        .values("key")
        .annotate(n=Count("pk"), lo=Min("step"), hi=Max("step"))
        .filter(n__gt=1)
        .values_list("key", "n", "lo", "hi")
    )
    return {key: KeyStats(n, lo, hi) for key, n, lo, hi in rows.order_by("key")}


def run_histories(run: Run, stats: dict[str, KeyStats], *, budget: int) -> dict[str, Series]:
    """The history of every key in `stats`: the short ones in one query, each long one (over
    LOAD_LIMIT points) in one bucketed query of its own."""
    short = [key for key, stat in stats.items() if stat.count <= LOAD_LIMIT]
    found: dict[str, Series] = {key: Series(total=stats[key].count) for key in short}
    if short:
        points = Metric.objects.filter(run=run, key__in=short).order_by("key", "step", "timestamp")
        for key, step, timestamp, value in points.values_list("key", "step", "timestamp", "value").iterator(
            chunk_size=10_000
        ):
            found[key].add(step, timestamp, value)
    for key in stats:
        if key not in found:
            bounds = (stats[key].first_step, stats[key].last_step)
            found[key] = _bucketed([run.pk], key, budget * BUCKETS_PER_POINT, bounds=bounds)[run.pk]
    return found


def history_range(run: Run, key: str, *, budget: int, low=None, high=None, by: str = "step") -> Series:
    """One key's history between `low` and `high` (inclusive; either may be None) of `by`
    ("step", or "timestamp" in epoch ms): what a zoomed chart fetches. Exact when the range
    holds at most LOAD_LIMIT points; bucketed otherwise. Two queries."""
    points = Metric.objects.filter(run=run, key=key)
    if low is not None:
        points = points.filter(**{f"{by}__gte": low})
    if high is not None:
        points = points.filter(**{f"{by}__lte": high})
    total = points.count()
    if total > LOAD_LIMIT:
        return _bucketed([run.pk], key, budget * BUCKETS_PER_POINT, low=low, high=high, by=by).get(run.pk, Series())
    series = Series(total=total)
    for step, timestamp, value in points.order_by("step", "timestamp").values_list("step", "timestamp", "value"):
        series.add(step, timestamp, value)
    return series


def selection_histories(selection: QuerySet, key: str, *, per_run: int) -> dict[int, Series]:
    """Run pk → its history of `key`, for the compare page (two queries): read as it is when
    the selection's points of `key` number at most LOAD_LIMIT × 4, else bucketed per run to
    about `per_run` points each."""
    pks = selection.order_by().values("pk")
    total = Metric.objects.filter(run__in=pks, key=key).count()
    if total > LOAD_LIMIT * 4:
        return _bucketed(pks, key, max(per_run // 2, 1))
    found: dict[int, Series] = defaultdict(Series)
    points = Metric.objects.filter(run__in=pks, key=key).order_by("run_id", "step", "timestamp")
    for run_pk, step, timestamp, value in points.values_list("run_id", "step", "timestamp", "value").iterator(
        chunk_size=10_000
    ):
        series = found[run_pk]
        series.add(step, timestamp, value)
        series.total += 1
    return dict(found)


def _bucketed(
    runs, key: str, buckets: int, *, low=None, high=None, by: str = "step", bounds: tuple[int, int] | None = None
) -> dict[int, Series]:
    """Each run's history of `key` cut into `buckets` equal step ranges, one row per bucket
    (the module's docstring says how it is drawn). `runs` is a list of pks or a pk queryset.
    `bounds` (first and last step), when the caller knows them for every run, saves reading
    the rows twice: a million-step history costs one pass instead of two."""
    table = f'"{Metric._meta.db_table}"'
    column = {name: f'"{Metric._meta.get_field(name).column}"' for name in ("run", "key", "step", "timestamp", "value")}
    # Written with a {p} for the table alias: the bounds read the rows unaliased, the buckets as m.
    where, params = ["{p}" + column["key"] + " = %s"], [key]
    if isinstance(runs, QuerySet):
        runs_sql, runs_params = runs.query.sql_with_params()
        where.append("{p}" + column["run"] + " IN (" + runs_sql.replace("{", "{{").replace("}", "}}") + ")")
        params += list(runs_params)
    else:
        where.append("{p}" + column["run"] + " IN (" + ", ".join(["%s"] * len(runs)) + ")")
        params += list(runs)
    if low is not None:
        where.append("{p}" + column[by] + " >= %s")
        params.append(low)
    if high is not None:
        where.append("{p}" + column[by] + " <= %s")
        params.append(high)
    condition = " AND ".join(where)
    m = {name: f"m.{col}" for name, col in column.items()}
    # Integer division on both databases (bigint operands): bucket 0 … buckets-1 per run.
    if bounds is not None:
        first, last = bounds
        sql = f"""
            SELECT {column["run"]}, ({column["step"]} - %s) * %s / %s AS bucket,
                   MIN({column["step"]}), MAX({column["step"]}), MIN({column["timestamp"]}), MAX({column["timestamp"]}),
                   MIN({column["value"]}), MAX({column["value"]}), COUNT(*), COUNT({column["value"]})
            FROM {table} WHERE {condition.format(p="")}
            GROUP BY {column["run"]}, bucket
            ORDER BY {column["run"]}, bucket
        """
        return _series_of(sql, [first, buckets, last - first + 1, *params])
    sql = f"""
        WITH bounds AS (
            SELECT {column["run"]} AS run, MIN({column["step"]}) AS lo, MAX({column["step"]}) AS hi
            FROM {table} WHERE {condition.format(p="")} GROUP BY {column["run"]}
        )
        SELECT {m["run"]}, ({m["step"]} - b.lo) * %s / (b.hi - b.lo + 1) AS bucket,
               MIN({m["step"]}), MAX({m["step"]}), MIN({m["timestamp"]}), MAX({m["timestamp"]}),
               MIN({m["value"]}), MAX({m["value"]}), COUNT(*), COUNT({m["value"]})
        FROM {table} m JOIN bounds b ON b.run = {m["run"]}
        WHERE {condition.format(p="m.")}
        GROUP BY {m["run"]}, bucket
        ORDER BY {m["run"]}, bucket
    """
    return _series_of(sql, [*params, buckets, *params])


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
