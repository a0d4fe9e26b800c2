"""A parent's children aggregated by step, per metric: the data of a band chart.

The aggregation runs in the database, one GROUP BY over the children's points (count, sum,
sum of squares, min, max per step), so a parent of 1,000 children × 1,000 steps sends 1,000
rows per metric, not a million points (bench/charts.py). A history longer than BAND_STEPS steps
is aggregated over equal step buckets instead of single steps. NaN (stored as NULL) and ±inf
are left out of every aggregate; `count` says how many children contributed a finite value.

Medians and quartiles: PostgreSQL computes them in the same query (percentile_cont); SQLite has
no ordered-set aggregate, so there they come from a scan of the same rows, in step order.

Kept, not only computed: once a parent's summaries have settled (no refresh for SETTLE_MS, so
not while its sweep is still logging), a Celery task (tracker/tasks.py, from beat) aggregates
its bands, quartiles included, and stores them in ChildBands under the version of the
summaries they were computed for. A page reads them in one query while that version is
current (stored_bands, current_bands) and aggregates itself only when they are not.
"""

import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from django.db import connection
from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery

from tracker import hot_sql
from tracker.constants import is_system_metric
from tracker.models import ACTIVE, ChildBands, LatestMetric, Metric, Run, RunSummary
from tracker.series import series_key, series_name

# Points of a band: a chart's width has no room for more.
BAND_STEPS = 1000
# Finite doubles only: excludes NULL (NaN) and ±inf in one comparison on both databases.
_FINITE = 1.7976931348623157e308


@dataclass
class Band:
    """One metric of one parent's children, by step (or step bucket)."""

    key: str
    steps: list[int] = field(default_factory=list)
    # Finite values per step: the children contributing (several a child in a bucket of steps;
    # not counted distinct, which would cost the aggregation a sort of every point).
    count: list[int] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)  # population std (ddof 0), as numpy's default
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    q1: list[float] | None = None
    median: list[float] | None = None
    q3: list[float] | None = None
    bucket: int = 1  # steps per point


@dataclass(frozen=True)
class BandKeys:
    """What a parent's children log with history: key → (first step, last step, children)."""

    ranges: dict[str, tuple[int, int, int]]

    def __bool__(self) -> bool:
        return bool(self.ranges)


def children_points(parent: Run) -> QuerySet:
    return Metric.objects.filter(run__in=Run.objects.children_of(parent).active().order_by().values("pk"))


def band_keys(parents: list[Run]) -> BandKeys:
    """The keys the children of `parents` log with a history, with their step range (one
    query). Read off the children's latest values, one row per child and key, not their
    histories: a key whose latest value is past step 0 has a history (as the compare page
    reads it), and the latest step is the last. Steps are taken to start at 0."""
    children = Run.objects.filter(parent__in=parents).active().order_by().values("pk")
    rows = (
        LatestMetric.objects.filter(run__in=children, step__gt=0)
        .values("key")
        .annotate(hi=Max("step"), runs=Count("run"))
        .order_by("key")
        .values_list("key", "hi", "runs")
    )
    # The machine's metrics (system/...) are no sweep's outcome: banded, they only push the
    # model's bands down the page.
    return BandKeys({key: (0, hi, runs) for key, hi, runs in rows if not is_system_metric(key)})


def parent_bands(parent: Run, keys: BandKeys, *, only: list[str] | None = None, quartiles: bool = False) -> list[Band]:
    """A band per key of `keys` (or of `only`, keys or series names) over `parent`'s active
    children: one query to find which keys were logged on a dataset (an index probe per child
    when none was), and one aggregation (two with quartiles on SQLite), or two when some were.
    A key the children logged on several datasets (a loss per epoch on train and on val) is a
    band per dataset, "loss · val": aggregated as one, each step's mean and spread mixed the
    two curves."""
    names = only if only is not None else list(keys.ranges)
    wanted = sorted({series_key(name) for name in names} & set(keys.ranges))
    if not wanted:
        return []
    lo = min(keys.ranges[key][0] for key in wanted)
    hi = max(keys.ranges[key][1] for key in wanted)
    bucket = max(1, math.ceil((hi - lo + 1) / BAND_STEPS))
    labelled = set(hot_sql.children_dataset_keys(parent.pk, active=ACTIVE)) & set(wanted)
    bands = []
    for group, by_dataset in (([key for key in wanted if key not in labelled], False), (sorted(labelled), True)):
        if group:
            bands += _aggregate(parent, group, lo=lo, bucket=bucket, quartiles=quartiles, by_dataset=by_dataset)
    if only is not None:
        bands = [band for band in bands if band.key in only or series_key(band.key) in only]
    return sorted(bands, key=lambda band: band.key)


def _aggregate(parent: Run, keys: list[str], *, lo: int, bucket: int, quartiles: bool, by_dataset: bool) -> list[Band]:
    """The bands of `keys`, one per key, or with `by_dataset` one per key and dataset where the
    children logged a key on more than one."""
    table = f'"{Metric._meta.db_table}"'
    col = {name: f'"{Metric._meta.get_field(name).column}"' for name in ("run", "key", "step", "value", "dataset_name")}
    m = {name: f"m.{column}" for name, column in col.items()}
    run_table = f'"{Run._meta.db_table}"'
    run_col = {name: f'"{Run._meta.get_field(name).column}"' for name in ("id", "parent", "lifecycle_stage")}
    postgres = connection.vendor == "postgresql"
    percentiles = (
        f", percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY {m['value']})"
        if quartiles and postgres
        else ""
    )
    placeholders = ", ".join(["%s"] * len(keys))
    # Without `by_dataset` the dataset is never read, so PostgreSQL reads the points from the
    # metric table's unique index alone.
    dataset = m["dataset_name"] if by_dataset else "NULL"

    def points(alias: str) -> str:
        return f"{alias}{col['key']} IN ({placeholders}) AND {alias}{col['value']} BETWEEN %s AND %s"

    def children(alias: str) -> str:
        return f"{alias}{run_col['parent']} = %s AND {alias}{run_col['lifecycle_stage']} = %s"

    if postgres:
        # Each child's points through the metric table's index on the run, one child after
        # another (OFFSET 0 keeps the planner from flattening the LATERAL into a join). Left to
        # itself PostgreSQL scans the whole table in parallel to keep a third of it, as
        # bench/charts.py's table is; a nested loop over the children reads only their rows:
        # 1,000 children × 1,000 steps in ~340 ms instead of ~600 (medians of 8, load ~4).
        read = [col["key"], col["step"], col["value"]] + ([col["dataset_name"]] if by_dataset else [])
        source = f"""{run_table} r CROSS JOIN LATERAL (
                SELECT {", ".join(read)} FROM {table}
                WHERE {col["run"]} = r.{run_col["id"]} AND {points("")} OFFSET 0
            ) m
            WHERE {children("r.")}"""
    else:
        source = f"""{table} m
            WHERE {points("m.")}
              AND {m["run"]} IN (SELECT {run_col["id"]} FROM {run_table} WHERE {children("")})"""
    # The bucket of a step: (step - lo) / bucket steps, integer division on both databases.
    sql = f"""
        SELECT {m["key"]}, {dataset} AS dataset, ({m["step"]} - %s) / %s AS bucket,
               COUNT({m["value"]}), SUM({m["value"]}), SUM({m["value"]} * {m["value"]}),
               MIN({m["value"]}), MAX({m["value"]}){percentiles}
        FROM {source}
        GROUP BY {m["key"]}, {"dataset, " if by_dataset else ""}bucket
        ORDER BY {m["key"]}, {"dataset, " if by_dataset else ""}bucket
    """
    # The same order in both shapes: the bucket, the points' keys and range, the parent.
    params = [lo, bucket, *keys, -_FINITE, _FINITE, parent.pk, "active"]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    bands: dict[tuple[str, str | None], Band] = {}
    for row in rows:
        key, dataset_name, number, count, total, squares, low, high = row[:8]
        band = bands.setdefault((key, dataset_name), Band(key=key, bucket=bucket))
        mean = total / count
        band.steps.append(lo + number * bucket)
        band.count.append(count)
        band.mean.append(mean)
        # Sum of squares can fall a hair below mean² by rounding: never a negative variance.
        band.std.append(math.sqrt(max(squares / count - mean * mean, 0.0)))
        band.low.append(low)
        band.high.append(high)
        if percentiles:
            q1, median, q3 = row[8]
            for name, value in (("q1", q1), ("median", median), ("q3", q3)):
                if getattr(band, name) is None:
                    setattr(band, name, [])
                getattr(band, name).append(value)
    if quartiles and not postgres:
        _quartiles_by_scan(parent, bands, lo=lo, bucket=bucket, by_dataset=by_dataset)
    datasets = defaultdict(int)
    for key, _ in bands:
        datasets[key] += 1
    for (key, dataset_name), band in bands.items():
        if datasets[key] > 1:
            band.key = series_name(key, dataset_name)
    return list(bands.values())


def _quartiles_by_scan(
    parent: Run, bands: dict[tuple[str, str | None], Band], *, lo: int, bucket: int, by_dataset: bool
) -> None:
    """SQLite's quartiles: the same rows read, each bucket's values sorted in Python."""
    values: dict[tuple[str, str | None, int], list[float]] = defaultdict(list)
    rows = (
        children_points(parent)
        .filter(key__in=sorted({key for key, _ in bands}), value__gte=-_FINITE, value__lte=_FINITE)
        .values_list("key", "dataset_name", "step", "value")
    )
    for key, dataset_name, step, value in rows.iterator(chunk_size=20_000):
        values[key, dataset_name if by_dataset else None, (step - lo) // bucket].append(value)
    for (key, dataset_name), band in bands.items():
        band.q1, band.median, band.q3 = [], [], []
        for step in band.steps:
            ordered = sorted(values[key, dataset_name, (step - lo) // bucket])
            band.q1.append(_percentile(ordered, 0.25))
            band.median.append(_percentile(ordered, 0.5))
            band.q3.append(_percentile(ordered, 0.75))


def _percentile(ordered: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks: PostgreSQL's percentile_cont and numpy's default."""
    position = (len(ordered) - 1) * fraction
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


# --- kept bands: computed in the worker, read by the pages -----------------------------------------

# A parent's bands are computed once its summaries have gone this long without a refresh: a
# running sweep refreshes them every half second, and bands computed meanwhile would be out of
# date before any page read them (the pages aggregate for themselves until then).
SETTLE_MS = 10_000


def summaries_version(parent_pk: int) -> int | None:
    """The newest computed_at of the parent's summaries: the version its bands are kept for."""
    return RunSummary.objects.filter(run_id=parent_pk).aggregate(newest=Max("computed_at"))["newest"]


def refresh_bands(*, parent_pk: int) -> int:
    """Aggregate and keep every band of `parent_pk`'s children, quartiles included, for the
    version of its summaries read first (a summary refreshed meanwhile makes them out of date
    at once, never wrongly current). Returns how many bands. Safe to run twice: it recomputes."""
    version = summaries_version(parent_pk)
    if version is None:
        ChildBands.objects.filter(run_id=parent_pk).delete()
        return 0
    parent = Run.objects.get(pk=parent_pk)
    keys = band_keys([parent])
    bands = parent_bands(parent, keys, quartiles=True) if keys else []
    kept = {"bands": [asdict(band) for band in bands], "version": version, "computed_at": int(time.time() * 1000)}
    ChildBands.objects.update_or_create(run_id=parent_pk, defaults=kept)
    return len(bands)


def stale_band_parents(*, settled_ms: int = SETTLE_MS) -> list[int]:
    """Parents whose newest summary is at least `settled_ms` old and newer than their kept bands
    (or who have none kept): the ones refresh_bands should run for (one query)."""
    kept = ChildBands.objects.filter(run=OuterRef("run")).values("version")[:1]
    rows = (
        RunSummary.objects.values("run")
        .annotate(newest=Max("computed_at"), kept=Subquery(kept))
        .filter(newest__lte=int(time.time() * 1000) - settled_ms)
        .filter(Q(kept__isnull=True) | Q(kept__lt=F("newest")))
        .order_by("run")
    )
    return list(rows.values_list("run", flat=True))


def _bands_from(stored: list[dict]) -> list[Band]:
    return [Band(**band) for band in stored]


def stored_bands(parent: Run, version: int | None) -> list[Band] | None:
    """The parent's kept bands if they were computed for summaries `version` (one query), else
    None: the page aggregates them itself."""
    if version is None:
        return None
    found = ChildBands.objects.filter(run=parent, version=version).values_list("bands", flat=True).first()
    return None if found is None else _bands_from(found)


def current_bands(parents: list[Run]) -> dict[int, list[Band]]:
    """Parent pk → its kept bands, for the parents whose bands are as new as their summaries
    (one query): compare sweeps aggregates only the others."""
    newest = RunSummary.objects.filter(run=OuterRef("run")).order_by("-computed_at").values("computed_at")[:1]
    rows = ChildBands.objects.filter(run__in=parents, version=Subquery(newest)).values_list("run_id", "bands")
    return {run_pk: _bands_from(stored) for run_pk, stored in rows}
