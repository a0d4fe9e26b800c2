"""Reads for the compare page: a selection of runs with their params, latest metrics and metric
goals (a metric's history is tracker/selectors/histories.py's selection_histories).

Each kind of data is one query whatever the selection's size (runs with their parents' names,
params, latest metrics, keys logged on several datasets, goal tags), so comparing 10,000 runs
costs the same number of round trips as comparing two.
"""

from dataclasses import dataclass, field

from django.db.models import Exists, F, OuterRef, QuerySet, Value
from django.db.models.functions import Coalesce

from tracker.constants import model_metrics_first
from tracker.errors import InvalidParameterValue, ResourceDoesNotExist
from tracker.goals import goal_in, goals_for_experiments
from tracker.models import Goal, LatestMetric, Metric, Param, Run
from tracker.series import series_key, split_latest_values
from tracker.values import duration_ms, is_missing, read_value

# A history line needs no more points than a chart is pixels wide...
MAX_POINTS_PER_RUN = 1000
# ...and a chart of many runs no more than a browser draws smoothly: 1,000 runs get 200 points
# each, 10,000 runs 20 (never fewer than MIN_POINTS_PER_RUN, so every line keeps its shape).
MAX_POINTS_TOTAL = 200_000
MIN_POINTS_PER_RUN = 20
# A loop that logs without a step (`mlflow.log_metric(key, value)`, each call at step 0) leaves a
# history only its timestamps order. Whether a key is such a loop is asked of the first runs of
# the selection (a sweep's children log alike): does a run have a second point of it? One
# statement, at most STEPLESS_SAMPLE_RUNS × STEPLESS_MAX_KEYS index probes, however long the
# histories and however many runs.
STEPLESS_SAMPLE_RUNS = 20
STEPLESS_MAX_KEYS = 30


@dataclass
class ComparedRun:
    """One run as the compare page and its charts see it: plain data, no queryset."""

    run_id: str
    name: str = ""
    pk: int = 0
    parent_run_id: str = ""
    parent_name: str = ""
    status: str = ""
    start_time: int | None = None
    end_time: int | None = None
    experiment_id: int | None = None
    experiment_name: str = ""
    params: dict[str, str] = field(default_factory=dict)
    # Latest value per key; a NaN is float("nan"), a key never logged is absent.
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.run_id

    @property
    def duration_ms(self) -> int | None:
        return duration_ms(self.start_time, self.end_time)


@dataclass
class Comparison:
    runs: list[ComparedRun]
    param_keys: list[str] = field(default_factory=list)
    metric_keys: list[str] = field(default_factory=list)
    # Metrics with more than one point in some run: the ones a history chart can draw...
    history_keys: list[str] = field(default_factory=list)
    # ...of which these were logged in a loop without a step: drawn by time, not by step.
    stepless_keys: set[str] = field(default_factory=set)
    goals: dict[str, str] = field(default_factory=dict)
    missing_ids: list[str] = field(default_factory=list)  # asked for, but no such run

    def goal(self, name: str) -> str:
        """The goal of a metric key, or of the key of one dataset's series of it."""
        return goal_in(self.goals, series_key(name))

    def best_value(self, key: str) -> float | None:
        """The best latest value of `key` by its goal; NaN and runs without it never win."""
        values = [run.metrics[key] for run in self.runs if not is_missing(run.metrics.get(key))]
        if not values:
            return None
        return max(values) if self.goal(key) == Goal.MAX else min(values)

    def differing_param_keys(self) -> list[str]:
        """Params whose value is not the same in every run (a run without the param differs)."""
        return [key for key in self.param_keys if len({run.params.get(key) for run in self.runs}) > 1]

    @property
    def experiment_ids(self) -> list[int]:
        return sorted({run.experiment_id for run in self.runs if run.experiment_id is not None})


# An MLflow run id is 32 characters; anything longer cannot name a run and is not sent to the database.
MAX_RUN_ID_LENGTH = 32


@dataclass
class Selection:
    """What the viewer asked to compare: the runs as a queryset (read as a subquery by every
    query of compare_runs) and, for "compare children", the parent."""

    runs: QuerySet
    requested_ids: list[str] = field(default_factory=list)
    parent: Run | None = None


def select_runs(*, run_ids: list[str] = (), parent_run_id: str = "") -> Selection:
    """The runs named by `run_ids` (deleted or not: the viewer picked them), or the active
    children of the run `parent_run_id`. No ids and no parent is InvalidParameterValue (400);
    an unknown parent ResourceDoesNotExist (404), after one query."""
    if parent_run_id:
        parent = Run.objects.filter(run_id=parent_run_id[:MAX_RUN_ID_LENGTH]).select_related("experiment").first()
        if parent is None or len(parent_run_id) > MAX_RUN_ID_LENGTH:
            raise ResourceDoesNotExist(f"No run with id {parent_run_id[:40]!r}: there are no children to compare.")
        return Selection(runs=Run.objects.children_of(parent).active(), parent=parent)
    run_ids = list(dict.fromkeys(run_id for run_id in run_ids if run_id))
    if not run_ids:
        raise InvalidParameterValue("No runs selected: tick runs in an experiment's tree, or open a parent's children.")
    wanted = [run_id for run_id in run_ids if len(run_id) <= MAX_RUN_ID_LENGTH]
    return Selection(runs=Run.objects.filter(run_id__in=wanted), requested_ids=run_ids)


def selected_runs(selection: QuerySet) -> list[ComparedRun]:
    """The selected runs in tree order, with their parents' and experiments' names (one query,
    joined); no params or metrics."""
    rows = selection.order_by("path", "pk").values(
        "pk",
        "run_id",
        "name",
        "parent_run_id",  # the mlflow.parentRunId tag: set for an orphan whose parent is missing
        "status",
        "start_time",
        "end_time",
        "experiment_id",
        parent_name=Coalesce(F("parent__name"), Value("")),
        experiment_name=F("experiment__name"),
    )
    return [ComparedRun(**row) for row in rows]


def compare_runs(selection: QuerySet, *, requested_ids: list[str] = (), histories: bool = True) -> Comparison:
    """The selected runs in tree order, with params, latest metrics and goals.

    Queries (5, whatever the number of runs; 6 when some key was logged on several datasets; 1
    more with `histories` when some key's latest values are all at step 0): the runs
    (selected_runs), their params, their latest metrics, the keys logged on datasets and their
    latest values per dataset (split_latest_values), the goal tags of their experiments, and
    which step-0 keys the first runs logged in a loop (_stepless_loops). Params and metrics are
    read through the selection as a subquery, so no list of 10,000 ids travels to the database."""
    runs = selected_runs(selection)
    found_ids = {run.run_id for run in runs}
    comparison = Comparison(runs=runs, missing_ids=[run_id for run_id in requested_ids if run_id not in found_ids])
    if not runs:
        return comparison

    by_pk = {run.pk: run for run in runs}
    selected_pks = selection.order_by().values("pk")
    param_keys, metric_keys, history_keys, first_step_keys = set(), set(), set(), set()
    for run_pk, key, value in Param.objects.filter(run__in=selected_pks).values_list("run", "key", "value"):
        by_pk[run_pk].params[key] = value
        param_keys.add(key)
    latest = LatestMetric.objects.filter(run__in=selected_pks).values_list("run", "key", "value", "step")
    on_datasets = split_latest_values(selection)
    for run_pk, key, value, step in latest:
        # A key logged on several datasets is a column per dataset: its latest value mixes them.
        columns = on_datasets.get((run_pk, key)) or [(key, read_value(value), step)]
        for name, column_value, column_step in columns:
            by_pk[run_pk].metrics[name] = column_value
            metric_keys.add(name)
            if column_step > 0:  # the latest value is not the first: the run has a history of this key
                history_keys.add(name)
            elif name == key:
                first_step_keys.add(key)
    comparison.param_keys = sorted(param_keys)
    comparison.metric_keys = model_metrics_first(metric_keys)
    if histories:  # else (a CSV export) no query for which keys were logged without a step
        comparison.stepless_keys = _stepless_loops(runs, first_step_keys - history_keys)
    comparison.history_keys = model_metrics_first(history_keys | comparison.stepless_keys)
    comparison.goals = goals_for_experiments(comparison.experiment_ids)
    return comparison


def _stepless_loops(runs: list[ComparedRun], keys: set[str]) -> set[str]:
    """Which of `keys` (latest at step 0 in every run) some of the first runs logged more than
    once: loops without a step (see STEPLESS_SAMPLE_RUNS)."""
    keys = sorted(keys)[:STEPLESS_MAX_KEYS]
    if not keys:
        return set()
    second_point = {
        f"k{i}": Exists(Metric.objects.filter(run=OuterRef("pk"), key=key).values("pk")[1:2])
        for i, key in enumerate(keys)
    }
    sample = [run.pk for run in runs[:STEPLESS_SAMPLE_RUNS]]
    found = Run.objects.filter(pk__in=sample).annotate(**second_point).values_list(*second_point)
    return {keys[i] for row in found for i, looped in enumerate(row) if looped}


def points_per_run(run_count: int) -> int:
    """How many history points each of `run_count` lines keeps (see MAX_POINTS_TOTAL)."""
    return max(MIN_POINTS_PER_RUN, min(MAX_POINTS_PER_RUN, MAX_POINTS_TOTAL // max(run_count, 1)))
