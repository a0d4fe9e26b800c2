"""tracker/selectors/compare.py: the compare page's reads, one query per kind whatever the selection."""

import math

import pytest

from tests.factories import ExperimentFactory, RunFactory
from tracker import goals
from tracker.constants import GOAL_TAG_PREFIX
from tracker.errors import InvalidParameterValue, ResourceDoesNotExist
from tracker.models import Metric, Run
from tracker.selectors import compare, histories
from tracker.services import KeyValue, MetricInput, experiment_set_tag, run_log_batch


def history(run, key, values):
    Metric.objects.bulk_create(
        Metric(run=run, key=key, value=value, timestamp=step, step=step) for step, value in enumerate(values)
    )


def test_it_reads_runs_params_metrics_and_goals_in_six_queries(db, django_assert_num_queries):
    parent = RunFactory(name="parent")
    children = [RunFactory(parent=parent, name=f"child-{i}") for i in range(3)]
    for i, child in enumerate(children):
        run_log_batch(
            run=child,
            params=[KeyValue("lr", str(10**-i))],
            metrics=[
                MetricInput("acc", 0.5 + i / 10, 1, 0),
                MetricInput("loss", 1.0, 1, 0),
                MetricInput("loss", 0.5, 2, 1),
            ],
        )
    experiment_set_tag(experiment=parent.experiment, key=GOAL_TAG_PREFIX + "acc", value="max")
    selection = compare.select_runs(run_ids=[c.run_id for c in reversed(children)])
    # Expect 6 queries: runs with their parents' names, params, latest metrics, keys logged on a
    # dataset (none), goal tags, and whether the first runs logged `acc` (at step 0 only) in a loop.
    with django_assert_num_queries(6):
        comparison = compare.compare_runs(selection.runs, requested_ids=selection.requested_ids)
    assert [run.name for run in comparison.runs] == ["child-0", "child-1", "child-2"]  # tree order
    assert comparison.runs[0].parent_name == "parent"
    assert comparison.runs[0].parent_run_id == parent.run_id
    assert comparison.runs[1].params == {"lr": "0.1"}
    assert comparison.runs[2].metrics == {"acc": 0.7, "loss": 0.5}
    assert comparison.param_keys == ["lr"]
    assert comparison.metric_keys == ["acc", "loss"]
    assert comparison.history_keys == ["loss"]
    assert comparison.goal("acc") == "max" and comparison.goal("loss") == "min"
    assert comparison.best_value("acc") == 0.7


def test_a_nan_metric_is_nan_and_never_the_best(db):
    runs = [RunFactory(), RunFactory()]
    run_log_batch(run=runs[0], metrics=[MetricInput("m", math.nan, 1, 0)])
    run_log_batch(run=runs[1], metrics=[MetricInput("m", 3.0, 1, 0)])
    comparison = compare.compare_runs(Run.objects.filter(pk__in=[r.pk for r in runs]))
    assert math.isnan(comparison.runs[0].metrics["m"])
    assert comparison.best_value("m") == 3.0


def test_differing_params_count_a_missing_param_as_a_difference(db):
    runs = [RunFactory(), RunFactory()]
    run_log_batch(run=runs[0], params=[KeyValue("a", "1"), KeyValue("b", "x"), KeyValue("c", "1")])
    run_log_batch(run=runs[1], params=[KeyValue("a", "1"), KeyValue("b", "y")])
    comparison = compare.compare_runs(Run.objects.filter(pk__in=[r.pk for r in runs]))
    assert comparison.differing_param_keys() == ["b", "c"]


def test_experiments_that_disagree_on_a_goal_take_the_first_experiments(db):
    first, second = ExperimentFactory(), ExperimentFactory()
    experiment_set_tag(experiment=first, key=GOAL_TAG_PREFIX + "m", value="max")
    experiment_set_tag(experiment=second, key=GOAL_TAG_PREFIX + "m", value="min")
    assert goals.goals_for_experiments([second.pk, first.pk]) == {"m": "max"}


def test_unknown_ids_are_reported_as_missing(db):
    run = RunFactory()
    selection = compare.select_runs(run_ids=[run.run_id, "nope", "z" * 40, run.run_id])
    comparison = compare.compare_runs(selection.runs, requested_ids=selection.requested_ids)
    assert [r.run_id for r in comparison.runs] == [run.run_id]
    assert comparison.missing_ids == ["nope", "z" * 40]


def test_no_selection_is_invalid_and_an_unknown_parent_does_not_exist(db):
    with pytest.raises(InvalidParameterValue):
        compare.select_runs(run_ids=["", ""])
    with pytest.raises(ResourceDoesNotExist):
        compare.select_runs(parent_run_id="f" * 32)
    with pytest.raises(ResourceDoesNotExist):
        compare.select_runs(parent_run_id="f" * 33)


def test_a_short_history_is_read_whole_in_step_order_nan_as_none(db, django_assert_num_queries):
    run = RunFactory()
    history(run, "loss", [1.0, None, 0.5])
    history(run, "other", [9.0])
    with django_assert_num_queries(2):  # the count, the points
        found = histories.selection_histories(Run.objects.filter(pk=run.pk), "loss", per_run=1000)
    assert (found[run.pk].steps, found[run.pk].values) == ([0, 1, 2], [1.0, None, 0.5])


def test_values_logged_at_one_step_come_in_timestamp_order(db):
    run = RunFactory()
    Metric.objects.bulk_create(
        [Metric(run=run, key="m", value=v, timestamp=t, step=0) for v, t in [(None, 3), (2.0, 1), (1.0, 2)]]
    )
    found = histories.selection_histories(Run.objects.filter(pk=run.pk), "m", per_run=10)
    assert found[run.pk].values == [2.0, 1.0, None]


def test_points_per_run_shrink_with_the_selection_within_bounds():
    assert compare.points_per_run(1) == compare.MAX_POINTS_PER_RUN
    assert compare.points_per_run(1000) == 200
    assert compare.points_per_run(10**6) == compare.MIN_POINTS_PER_RUN
