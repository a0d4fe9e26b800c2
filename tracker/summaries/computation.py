"""Computing one parent's summary from its children: a constant number of queries, whatever
the number of children (stats, the best candidates, keys logged on datasets, params, delete,
upsert)."""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from tracker import hot_sql
from tracker.constants import is_system_metric
from tracker.goals import goal_in
from tracker.models import ACTIVE, SUMMARY_KEY_LENGTH, Goal, Run, RunSummary
from tracker.series import series_key, split_latest_values
from tracker.values import now_ms, number_or_none


@dataclass(frozen=True)
class _Candidate:
    value: float
    run_pk: int
    start_time: int | None
    run_id: str

    def rank(self, goal: str) -> tuple:
        """Sort key, best first: by the goal, then earliest start (unknown last), then run id."""
        signed = self.value if goal == Goal.MIN else -self.value
        return (signed, self.start_time is None, self.start_time or 0, self.run_id)


def recompute_summary(run_pk: int, *, goals: dict[str, str]) -> None:
    """Rewrite `run_pk`'s summary rows from its active children: their own latest values and their
    own summaries (so the best covers the whole subtree). Children's summaries already cover their
    active subtrees, so one level is enough; a deleted child's summary is left out, and with it its
    whole subtree. (The statements are tracker/hot_sql.py's: this is the summary worker's hot path.)"""
    stats = _spread_per_key(run_pk)
    best = _best_per_metric(run_pk, goals)
    _summarise_by_dataset(run_pk, goals, stats=stats, best=best)
    params = _params_of(candidate.run_pk for candidate in best.values())
    _write_summary(run_pk, best=best, stats=stats, params=params, goals=goals)


# Past this magnitude the database's AVG and STDDEV may overflow (PostgreSQL sums 1e308 + 1e308
# into an error; SQLite's STDDEV_POP fails on an infinity), and every refresh of the tree failed.
_SAFE_MAGNITUDE = 1e150


def _spread_per_key(run_pk: int) -> dict[str, dict]:
    """count/min/max/mean/std over the direct children's own values (NaN is NULL: not counted);
    std is the population std. Keys whose values reach an infinity or a huge magnitude get their
    mean and std computed here instead (one more query, only when there are such keys):
    infinities are values like any other (the mean of a set with +inf is +inf, with both
    infinities NaN; a std with an infinity is NaN)."""
    # Values past the safe magnitude count as 0 in the database's AVG and STDDEV (which would
    # fail on them); the keys that have any are recomputed below, from their values.
    spread = {
        key: {"count": count, "min_value": low, "max_value": high, "mean_value": mean, "std_value": std}
        for key, count, low, high, mean, std in hot_sql.summary_spread(run_pk, active=ACTIVE, bound=_SAFE_MAGNITUDE)
    }
    huge = [key for key, row in spread.items() if _is_huge(row["min_value"]) or _is_huge(row["max_value"])]
    if huge:
        values: dict[str, list[float]] = {}
        for key, value in hot_sql.summary_own_values(run_pk, active=ACTIVE, keys=huge):
            values.setdefault(key, []).append(value)
        for key, found in values.items():
            mean, std = mean_and_std(found)
            spread[key].update(mean_value=mean, std_value=std)
    return spread


def _is_huge(value: float | None) -> bool:
    return value is not None and not -_SAFE_MAGNITUDE < value < _SAFE_MAGNITUDE


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and population std of any floats, infinities and values near the largest double
    included, without overflowing: scaled by the largest magnitude first."""
    if any(math.isinf(value) for value in values):
        total = sum(value for value in values if math.isinf(value))  # inf, -inf, or NaN for both
        return total, math.nan
    scale = max(abs(value) for value in values) or 1.0
    scaled = [value / scale for value in values]
    mean = math.fsum(scaled) / len(scaled)
    variance = math.fsum((value - mean) ** 2 for value in scaled) / len(scaled)
    return mean * scale, math.sqrt(variance) * scale


def _best_per_metric(run_pk: int, goals: dict[str, str]) -> dict[str, _Candidate]:
    """The best of the children's own values and of their summaries' bests, per key. The database
    ranks them, so at most four rows per key come back however many children there are: the
    first in each direction from each source, since a goal inferred from a key's name is known
    only once the key is."""
    candidates: dict[str, list[_Candidate]] = {}
    for key, lowest, highest, value, best_pk, start_time, run_id in hot_sql.summary_candidates(run_pk, active=ACTIVE):
        if (lowest if _goal(goals, key) == Goal.MIN else highest) == 1:
            candidate = _Candidate(value=value, run_pk=best_pk, start_time=start_time, run_id=run_id)
            candidates.setdefault(key, []).append(candidate)
    return {key: _best_of(found, _goal(goals, key)) for key, found in candidates.items()}


def _best_of(candidates: list[_Candidate], goal: str) -> _Candidate:
    return min(candidates, key=lambda candidate: candidate.rank(goal))


def _goal(goals: dict[str, str], name: str) -> str:
    """The goal of a key, or of one dataset's series of it (a summary row's key may be either)."""
    return goal_in(goals, series_key(name))


def _summarise_by_dataset(run_pk: int, goals: dict[str, str], *, stats: dict, best: dict[str, _Candidate]) -> None:
    """A key the direct children logged on several datasets (a model's accuracy on train and on
    test) is summarised per dataset, "accuracy · test", in place of the key: a child's latest
    value of it is whichever dataset it logged last, so its best and spread mixed train scores
    with test scores. The children's own summaries of such series came in with `best`. One
    query (two when some key was logged on a dataset, three when it is summarised by dataset)."""
    labelled_keys = [key for key in hot_sql.children_dataset_keys(run_pk, active=ACTIVE) if not is_system_metric(key)]
    if not labelled_keys:
        return
    children = Run.objects.filter(parent_id=run_pk, lifecycle_stage=ACTIVE)
    own_values: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for (child_pk, key), columns in split_latest_values(children, labelled_keys=labelled_keys).items():
        stats.pop(key, None)
        best.pop(key, None)
        for name, value, _ in columns:
            # NaN is no value, as the database's aggregates skip NULL; a series whose name (a long
            # key and a long dataset name) will not fit a summary row is left out.
            if not math.isnan(value) and len(name) <= SUMMARY_KEY_LENGTH:
                own_values[name].append((child_pk, value))
    if not own_values:
        return
    involved = {child_pk for found in own_values.values() for child_pk, _ in found}
    runs = {
        pk: (start, run_id)
        for pk, start, run_id in children.filter(pk__in=involved).values_list("pk", "start_time", "run_id")
    }
    for name, found in own_values.items():
        values = [value for _, value in found]
        mean, std = mean_and_std(values)
        stats[name] = {
            "count": len(values),
            "min_value": min(values),
            "max_value": max(values),
            "mean_value": mean,
            "std_value": std,
        }
        candidates = [_Candidate(value, pk, *runs[pk]) for pk, value in found]
        best[name] = _best_of(candidates + ([best[name]] if name in best else []), _goal(goals, name))


def _params_of(run_pks: Iterable[int]) -> dict[int, dict[str, str]]:
    """The best runs' params, fresh (a param may arrive after the metric)."""
    params: dict[int, dict[str, str]] = {}
    for param_run_pk, name, value in hot_sql.params_of(sorted(set(run_pks))):
        params.setdefault(param_run_pk, {})[name] = value
    return params


def _write_summary(
    run_pk: int,
    *,
    best: dict[str, _Candidate],
    stats: dict[str, dict],
    params: dict[int, dict[str, str]],
    goals: dict[str, str],
) -> None:
    """Delete the keys no child has any more (moved, deleted, only NaN left), then upsert the rest
    in one statement."""
    computed_at = now_ms()
    rows = []
    for key in sorted(best):
        spread = stats.get(key, {})
        rows.append(
            RunSummary(
                run_id=run_pk,
                key=key,
                goal=_goal(goals, key),
                best_value=best[key].value,
                best_run_id=best[key].run_pk,
                best_params=params.get(best[key].run_pk, {}),
                count=spread.get("count", 0),
                min_value=spread.get("min_value"),
                max_value=spread.get("max_value"),
                mean_value=number_or_none(spread.get("mean_value")),
                std_value=number_or_none(spread.get("std_value")),
                computed_at=computed_at,
            )
        )
    hot_sql.write_summaries(run_pk, rows)
