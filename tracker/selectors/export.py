"""CSV export of runs: the rows of the native API's `?format=csv` and the cell rules every CSV
export shares (the compare page's uses them too)."""

import math
from collections.abc import Iterator

from django.db.models import Prefetch

from tracker.models import LatestMetric, Param, RunTag

RUN_COLUMNS = [
    "run_id",
    "run_name",
    "experiment_id",
    "parent_run_id",
    "depth",
    "status",
    "start_time",
    "end_time",
    "lifecycle_stage",
    "user_id",
]
# Rows stream from the database in chunks of this many runs (with their params, metrics, tags),
# so an export of 100,000 runs never holds them all in memory.
CHUNK = 2000


def csv_number(value: float | None) -> str:
    if value is None:
        return ""
    return "NaN" if math.isnan(value) else repr(value)


def spreadsheet_safe(text: str) -> str:
    """A leading = + - @ makes a spreadsheet run the cell as a formula; a quote makes it text.
    Numbers ("-0.5") are left alone."""
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def runs_csv_rows(runs) -> Iterator[list]:
    """Header, then one row per run of the queryset `runs` (in its order): the run's own fields,
    then a column per param, latest metric and tag key any of them has, as MLflow's
    search_runs DataFrame names them (`params.x`, `metrics.y`, `tags.z`)."""
    pks = runs.values("pk")
    param_keys = _keys(Param, pks)
    metric_keys = _keys(LatestMetric, pks)
    tag_keys = _keys(RunTag, pks)
    yield [
        *RUN_COLUMNS,
        *(f"params.{key}" for key in param_keys),
        *(f"metrics.{key}" for key in metric_keys),
        *(f"tags.{key}" for key in tag_keys),
    ]
    with_values = runs.prefetch_related(
        Prefetch("params", queryset=Param.objects.only("run_id", "key", "value")),
        Prefetch("latest_metrics", queryset=LatestMetric.objects.only("run_id", "key", "value")),
        Prefetch("tags", queryset=RunTag.objects.only("run_id", "key", "value")),
    )
    for run in with_values.iterator(chunk_size=CHUNK):
        params = {p.key: p.value for p in run.params.all()}
        metrics = {m.key: m.value for m in run.latest_metrics.all()}
        tags = {t.key: t.value for t in run.tags.all()}
        yield [
            run.run_id,
            spreadsheet_safe(run.name),
            run.experiment_id,
            run.parent_run_id,
            run.depth,
            run.status,
            _blank_if_none(run.start_time),
            _blank_if_none(run.end_time),
            run.lifecycle_stage,
            spreadsheet_safe(run.user_id),
            *(spreadsheet_safe(params.get(key, "")) for key in param_keys),
            *(csv_number(metrics[key]) if key in metrics else "" for key in metric_keys),
            *(spreadsheet_safe(tags.get(key, "")) for key in tag_keys),
        ]


def _keys(model, run_pks) -> list[str]:
    return list(model.objects.filter(run__in=run_pks).order_by("key").values_list("key", flat=True).distinct())


def _blank_if_none(value) -> str | int:
    return "" if value is None else value
