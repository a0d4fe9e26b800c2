"""Computing one parent's summary from its children: a constant number of queries, whatever
the number of children (stats, best own value, best child summary, params, delete, upsert)."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Avg, Count, F, Max, Min, Q, QuerySet, StdDev, Window
from django.db.models.functions import RowNumber

from tracker.goals import goal_in
from tracker.models import ACTIVE, Goal, LatestMetric, Param, RunSummary
from tracker.values import now_ms, number_or_none

_SUMMARY_FIELDS = [
    "goal",
    "best_value",
    "best_run",
    "best_params",
    "count",
    "min_value",
    "max_value",
    "mean_value",
    "std_value",
    "computed_at",
]


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
    own summaries (so the best covers the whole subtree)."""
    own_values = LatestMetric.objects.filter(run__parent_id=run_pk, run__lifecycle_stage=ACTIVE, value__isnull=False)
    # Children's summaries already cover their active subtrees, so one level is enough here; a
    # deleted child's summary is left out, and with it its whole subtree.
    child_bests = RunSummary.objects.filter(
        run__parent_id=run_pk, run__lifecycle_stage=ACTIVE, best_value__isnull=False, best_run__isnull=False
    )
    stats = _spread_per_key(own_values)
    best = _best_per_metric(own_values, child_bests, goals)
    params = _params_of(candidate.run_pk for candidate in best.values())
    _write_summary(run_pk, best=best, stats=stats, params=params, goals=goals)


def _spread_per_key(own_values: QuerySet) -> dict[str, dict]:
    """count/min/max/mean/std over the direct children's own values (NaN is NULL: not counted).
    StdDev is population std; Django provides STDDEV_POP on SQLite too."""
    return {
        row["key"]: row
        for row in own_values.order_by()
        .values("key")
        .annotate(
            count=Count("value"),
            min_value=Min("value"),
            max_value=Max("value"),
            mean_value=Avg("value"),
            std_value=StdDev("value"),
        )
    }


def _best_per_metric(own_values: QuerySet, child_bests: QuerySet, goals: dict[str, str]) -> dict[str, _Candidate]:
    """The best of the children's own values and of their summaries' bests, per key."""
    candidates: dict[str, list[_Candidate]] = {}
    sources = [
        _best_per_key(own_values, "value", "run", goals),
        _best_per_key(child_bests, "best_value", "best_run", goals),
    ]
    for source in sources:
        for key, candidate in source:
            candidates.setdefault(key, []).append(candidate)
    return {
        key: min(found, key=lambda candidate, key=key: candidate.rank(goal_in(goals, key)))
        for key, found in candidates.items()
    }


def _params_of(run_pks: Iterable[int]) -> dict[int, dict[str, str]]:
    """The best runs' params, fresh (a param may arrive after the metric)."""
    params: dict[int, dict[str, str]] = {}
    for param_run_pk, name, value in Param.objects.filter(run_id__in=set(run_pks)).values_list(
        "run_id", "key", "value"
    ):
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
                goal=goal_in(goals, key),
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
    RunSummary.objects.filter(run_id=run_pk).exclude(key__in=list(best)).delete()
    if rows:
        RunSummary.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["run", "key"], update_fields=_SUMMARY_FIELDS
        )


def _best_per_key(rows: QuerySet, value_field: str, run_field: str, goals: dict[str, str]):
    """(key, best candidate) for each key of `rows` by its goal (tracker/goals.py), ranked in the
    database so at most two rows per key come back, however many children there are: the first
    in each direction, since a goal inferred from a key's name is known only once the key is."""
    ties = [F(f"{run_field}__start_time").asc(nulls_last=True), F(f"{run_field}__run_id").asc()]
    ranked = (
        rows.order_by()
        .annotate(
            lowest=Window(RowNumber(), partition_by=[F("key")], order_by=[F(value_field).asc(), *ties]),
            highest=Window(RowNumber(), partition_by=[F("key")], order_by=[F(value_field).desc(), *ties]),
        )
        .filter(Q(lowest=1) | Q(highest=1))
        .values_list(
            "key",
            "lowest",
            "highest",
            value_field,
            f"{run_field}_id",
            f"{run_field}__start_time",
            f"{run_field}__run_id",
        )
    )
    for key, lowest, highest, value, run_pk, start_time, run_id in ranked:
        if (lowest if goal_in(goals, key) == Goal.MIN else highest) == 1:
            yield key, _Candidate(value=value, run_pk=run_pk, start_time=start_time, run_id=run_id)
