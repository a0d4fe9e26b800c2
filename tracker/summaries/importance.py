"""Parameter importance of a sweep: which params of a parent's children drive a metric.

A random forest is fitted on the children's params → their latest value of the metric, and
each param's importance is the drop in the forest's fit when that param's column is shuffled
(permutation importance: unlike the forest's impurity importance, it does not favour params
with many distinct values). The sign comes from Spearman's rank correlation of a numeric param
with the metric. Numeric params whose values span 3+ decades (a log-uniform learning rate) are
fitted as log10 and marked `log`; other params are categories.

Computed in the Celery worker (tracker/tasks.py) after a parent's summary refresh, stored in
ParamImportance, never fitted in a page request. A parent is fitted only for metrics at least
MIN_CHILDREN children have; an unchanged sweep (same fingerprint) is not fitted again.
"""

import hashlib
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np
from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery

from tracker import hot_sql
from tracker.constants import is_system_metric
from tracker.models import (
    ACTIVE,
    SUMMARY_KEY_LENGTH,
    LatestMetric,
    Param,
    ParamImportance,
    Run,
    RunSummary,
    path_segment,
)
from tracker.series import split_latest_values
from tracker.values import finite_or_none

# Fewer children than this say nothing reliable about their params.
MIN_CHILDREN = 10
# A positive numeric param whose largest value is this many times its smallest is log-scaled.
LOG_SPAN = 1000.0
# Metrics fitted per parent at most (a fit of 1,000 children takes ~1 s on one core).
MAX_METRICS = 20
# Params fitted at most: the ones with most distinct values among the children beyond that.
MAX_PARAMS = 50
# A sweep still running is refitted at most this often after a summary refresh; the periodic
# refit (beat) catches the last changes.
REFIT_INTERVAL_MS = 60_000
TREES = 100
REPEATS = 5


@dataclass
class Importance:
    param: str
    importance: float  # share of the total permutation importance, 0–1
    spread: float  # std of the importance over the repeats, on the same scale
    correlation: float | None  # Spearman's rho with the metric; None for a categorical param
    kind: str  # "numeric" or "categorical"
    log: bool = False


def _column(values: list[str | None]) -> tuple[np.ndarray, str, bool]:
    """A param's values as a feature column: (numbers, kind, log-scaled)."""
    numbers = [None if value is None else finite_or_none(value) for value in values]
    present = [number for number in numbers if number is not None]
    if present and all(value is None or number is not None for value, number in zip(values, numbers, strict=True)):
        log = min(present) > 0 and max(present) / min(present) >= LOG_SPAN
        fill = float(np.median(present))
        column = np.array([fill if number is None else number for number in numbers], dtype=float)
        return (np.log10(column) if log else column), "numeric", log
    categories = {value: index for index, value in enumerate(sorted({str(value) for value in values}))}
    return np.array([categories[str(value)] for value in values], dtype=float), "categorical", False


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    rank_x, rank_y = x.argsort().argsort().astype(float), y.argsort().argsort().astype(float)
    if rank_x.std() == 0 or rank_y.std() == 0:
        return None
    return float(np.corrcoef(rank_x, rank_y)[0, 1])


def param_importance(params: list[dict[str, str]], values: list[float], *, seed: int = 0) -> list[Importance]:
    """Importance of each param that varies among `params` (one dict per child) for `values`
    (the metric, one per child, finite), most important first. Pure: no database."""
    # sklearn takes ~3 s to import: only the worker that fits pays for it, not every process
    # that imports the tasks module to queue one.
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    names = sorted({name for row in params for name in row})
    varying = [name for name in names if len({row.get(name) for row in params}) > 1]
    varying = sorted(varying, key=lambda name: -len({row.get(name) for row in params}))[:MAX_PARAMS]
    if not varying or len(values) < 2:
        return []
    columns = [_column([row.get(name) for row in params]) for name in varying]
    features = np.column_stack([column for column, _, _ in columns])
    target = np.asarray(values, dtype=float)
    forest = RandomForestRegressor(n_estimators=TREES, min_samples_leaf=2, random_state=seed, n_jobs=1)
    forest.fit(features, target)
    found = permutation_importance(forest, features, target, n_repeats=REPEATS, random_state=seed, n_jobs=1)
    raw = np.clip(found.importances_mean, 0, None)
    total = raw.sum() or 1.0
    ranked = [
        Importance(
            param=name,
            importance=float(raw[index] / total),
            spread=float(found.importances_std[index] / total),
            correlation=_spearman(features[:, index], target) if kind == "numeric" else None,
            kind=kind,
            log=log,
        )
        for index, (name, (_, kind, log)) in enumerate(zip(varying, columns, strict=True))
    ]
    return sorted(ranked, key=lambda item: (-item.importance, item.param))


def _sweep(parent_pk: int) -> tuple[dict[int, dict[str, str]], dict[str, dict[int, float]]]:
    """The active children's params and finite latest values of the model's metrics (three
    queries, four when a key was logged on a dataset): the machine's (system/...) are no
    param's outcome."""
    children = Run.objects.filter(parent_id=parent_pk).active().order_by().values("pk")
    params: dict[int, dict[str, str]] = defaultdict(dict)
    for run_pk, key, value in Param.objects.filter(run__in=children).values_list("run", "key", "value"):
        params[run_pk][key] = value
    metrics: dict[str, dict[int, float]] = defaultdict(dict)
    for run_pk, key, value in LatestMetric.objects.filter(run__in=children).values_list("run", "key", "value"):
        if value is not None and math.isfinite(value) and not is_system_metric(key):
            metrics[key][run_pk] = value
    # A key logged on several datasets is fitted per dataset, as it is summarised: its latest
    # values mix a model's train and test scores.
    labelled_keys = hot_sql.children_dataset_keys(parent_pk, active=ACTIVE)
    for (run_pk, key), columns in split_latest_values(children, labelled_keys=labelled_keys).items():
        if is_system_metric(key):
            continue
        metrics.pop(key, None)
        for name, value, _ in columns:
            if math.isfinite(value) and len(name) <= SUMMARY_KEY_LENGTH:
                metrics[name][run_pk] = value
    return params, metrics


def _fingerprint(params: dict, values: dict[int, float]) -> str:
    digest = hashlib.sha256()
    for run_pk in sorted(values):
        digest.update(repr((run_pk, values[run_pk], sorted(params.get(run_pk, {}).items()))).encode())
    return digest.hexdigest()


def refresh_importance(*, parent_pk: int) -> int:
    """Fit and store the importance of every metric at least MIN_CHILDREN of `parent_pk`'s
    children have; drop what no longer qualifies. Returns how many metrics were fitted.
    Safe to run twice: it recomputes, and skips a metric whose inputs did not change."""
    params, metrics = _sweep(parent_pk)
    eligible = sorted((key for key, values in metrics.items() if len(values) >= MIN_CHILDREN))[:MAX_METRICS]
    stored = {row.key: row for row in ParamImportance.objects.filter(run_id=parent_pk)}
    fitted = 0
    for key in eligible:
        values = metrics[key]
        fingerprint = _fingerprint(params, values)
        if key in stored and stored[key].fingerprint == fingerprint:
            continue
        run_pks = sorted(values)
        ranked = param_importance([params.get(pk, {}) for pk in run_pks], [values[pk] for pk in run_pks])
        ParamImportance.objects.update_or_create(
            run_id=parent_pk,
            key=key,
            defaults={
                "params": [asdict(item) for item in ranked],
                "children": len(run_pks),
                "fingerprint": fingerprint,
                "computed_at": int(time.time() * 1000),
            },
        )
        fitted += 1
    with transaction.atomic():
        ParamImportance.objects.filter(run_id=parent_pk).exclude(key__in=eligible).delete()
    return fitted


def importance_for(parent: Run, keys: list[str] | None = None) -> dict[str, ParamImportance]:
    """The stored importance of `parent`'s metrics (all, or `keys`), by metric (one query)."""
    rows = ParamImportance.objects.filter(run=parent)
    if keys is not None:
        rows = rows.filter(key__in=keys)
    return {row.key: row for row in rows.order_by("key")}


def stale_parents(*, root_pk: int | None = None, min_age_ms: int = 0) -> list[int]:
    """Parents (in the tree under `root_pk`, or anywhere) with a metric at least MIN_CHILDREN
    children have, whose summary was recomputed after their importance was last fitted (or
    never fitted), and whose last fit is at least `min_age_ms` old (one query)."""
    last_fit = ParamImportance.objects.filter(run=OuterRef("run")).order_by("-computed_at").values("computed_at")[:1]
    rows = RunSummary.objects.filter(count__gte=MIN_CHILDREN)
    if root_pk is not None:
        rows = rows.filter(run__path__startswith=path_segment(root_pk))
    rows = rows.annotate(last_fit=Subquery(last_fit)).filter(
        Q(last_fit__isnull=True)
        | (Q(computed_at__gt=F("last_fit")) & Q(last_fit__lte=int(time.time() * 1000) - min_age_ms))
    )
    return sorted(set(rows.values_list("run_id", flat=True)))
