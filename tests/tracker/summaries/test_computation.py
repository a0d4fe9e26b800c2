"""A parent's best-child summary: one aggregate over its children and their own summaries."""

import math

import pytest

from tests.factories import ExperimentFactory, RunFactory, build_chain
from tracker.constants import GOAL_TAG_PREFIX
from tracker.models import DELETED, ExperimentTag, LatestMetric, Param, RunSummary
from tracker.services import MetricInput, run_log_batch
from tracker.summaries import reads as summary_reads
from tracker.summaries import refresh as summary_refresh

pytestmark = pytest.mark.django_db


def child(parent, value, *, key="metric1", params=None, **fields):
    """A child of `parent` whose latest `key` is `value` (NaN is stored as NULL, as ingest does)."""
    run = RunFactory(parent=parent, experiment=parent.experiment, **fields)
    if value is not None:
        stored = None if math.isnan(value) else value
        LatestMetric.objects.create(run=run, key=key, value=stored, timestamp=0, step=0)
    for name, param_value in (params or {}).items():
        Param.objects.create(run=run, key=name, value=param_value)
    return run


def refreshed(run, key="metric1") -> RunSummary:
    summary_refresh.recompute_all(experiment_id=run.experiment_id)
    return RunSummary.objects.select_related("best_run").get(run=run, key=key)


@pytest.fixture
def parent():
    return RunFactory(experiment=ExperimentFactory())


def test_the_best_child_has_the_lowest_value_by_default(parent):
    child(parent, 0.7)
    best = child(parent, 0.2, params={"param1": "a", "param2": "d"})
    child(parent, 0.5)

    summary = refreshed(parent)

    assert (summary.goal, summary.best_value, summary.best_run) == ("min", 0.2, best)
    assert summary.best_params == {"param1": "a", "param2": "d"}


def test_a_max_goal_picks_the_highest_value(parent):
    ExperimentTag.objects.create(experiment=parent.experiment, key=GOAL_TAG_PREFIX + "accuracy", value="max")
    child(parent, 0.7, key="accuracy")
    best = child(parent, 0.9, key="accuracy")
    child(parent, 0.1, key="accuracy")

    summary = refreshed(parent, "accuracy")

    assert (summary.goal, summary.best_value, summary.best_run) == ("max", 0.9, best)


def test_goals_are_per_metric(parent):
    ExperimentTag.objects.create(experiment=parent.experiment, key=GOAL_TAG_PREFIX + "accuracy", value="max")
    low = child(parent, 0.1, key="loss")
    LatestMetric.objects.create(run=low, key="accuracy", value=0.1, timestamp=0)
    high = child(parent, 0.9, key="loss")
    LatestMetric.objects.create(run=high, key="accuracy", value=0.9, timestamp=0)

    assert refreshed(parent, "loss").best_run == low
    assert refreshed(parent, "accuracy").best_run == high


def test_a_tie_goes_to_the_child_that_started_first(parent):
    child(parent, 0.3, start_time=3000)
    first = child(parent, 0.3, start_time=1000)
    child(parent, 0.3, start_time=2000)

    assert refreshed(parent).best_run == first


def test_a_tie_at_the_same_start_goes_to_the_lower_run_id(parent):
    child(parent, 0.3, start_time=1000, run_id="b" * 32)
    lower = child(parent, 0.3, start_time=1000, run_id="a" * 32)

    assert refreshed(parent).best_run == lower


def test_a_tie_between_a_child_and_a_grandchild_goes_to_the_earlier_start(parent):
    middle = child(parent, 0.3, start_time=2000)
    grandchild = child(middle, 0.3, start_time=1000)

    assert refreshed(parent).best_run == grandchild


def test_nan_values_are_ignored(parent):
    child(parent, math.nan)
    best = child(parent, 0.4)
    child(parent, 0.6)

    summary = refreshed(parent)

    assert (summary.best_run, summary.count, summary.min_value, summary.max_value) == (best, 2, 0.4, 0.6)
    assert summary.mean_value == pytest.approx(0.5)


def test_a_metric_that_is_nan_in_every_child_has_no_summary(parent):
    child(parent, math.nan)
    child(parent, math.nan)

    summary_refresh.recompute_all(experiment_id=parent.experiment_id)

    assert not RunSummary.objects.filter(run=parent).exists()


def test_deleted_children_and_their_subtrees_are_left_out(parent):
    kept = child(parent, 0.5)
    deleted = child(parent, 0.1, lifecycle_stage=DELETED)
    child(deleted, 0.01)  # an active grandchild under a deleted child is out too

    summary = refreshed(parent)

    assert (summary.best_run, summary.count) == (kept, 1)


def test_the_root_best_is_a_great_grandchild_four_levels_down():
    root, child_run, grandchild, great_grandchild = build_chain(4)
    for run, value in [(child_run, 0.9), (grandchild, 0.5), (great_grandchild, 0.1)]:
        LatestMetric.objects.create(run=run, key="metric1", value=value, timestamp=0)
    Param.objects.create(run=great_grandchild, key="lr", value="0.001")
    sibling = child(root, 0.3)

    summary = refreshed(root)

    assert (summary.best_value, summary.best_run, summary.best_params) == (0.1, great_grandchild, {"lr": "0.001"})
    # count/min/max/mean/std are over the root's direct children only.
    assert (summary.count, summary.min_value, summary.max_value) == (2, 0.3, 0.9)
    assert RunSummary.objects.get(run=grandchild, key="metric1").best_run == great_grandchild
    assert RunSummary.objects.get(run=child_run, key="metric1").best_run == great_grandchild
    assert sibling.summaries.count() == 0  # a leaf has no summary


def test_count_min_max_mean_and_std_cover_the_direct_children(parent):
    values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    for value in values:
        child(parent, value)

    summary = refreshed(parent)

    assert (summary.count, summary.min_value, summary.max_value) == (8, 2.0, 9.0)
    assert summary.mean_value == pytest.approx(5.0)
    assert summary.std_value == pytest.approx(2.0)  # population std of the classic example


def test_one_child_has_a_std_of_zero(parent):
    child(parent, 0.25)

    summary = refreshed(parent)

    assert (summary.count, summary.mean_value, summary.std_value) == (1, 0.25, 0.0)


def test_a_metric_only_grandchildren_log_has_a_best_but_no_spread(parent):
    middle = child(parent, None)
    deep = child(middle, 0.4)

    summary = refreshed(parent)

    assert (summary.best_run, summary.count, summary.min_value, summary.mean_value) == (deep, 0, None, None)


def test_summaries_of_metrics_no_child_has_any_more_are_deleted(parent):
    only = child(parent, 0.4)
    summary_refresh.recompute_all(experiment_id=parent.experiment_id)
    LatestMetric.objects.filter(run=only).update(key="renamed")

    summary_refresh.recompute_all(experiment_id=parent.experiment_id)

    assert list(RunSummary.objects.filter(run=parent).values_list("key", flat=True)) == ["renamed"]


def test_recomputing_twice_gives_the_same_summary(parent):
    for value in [0.3, 0.1, 0.2]:
        child(parent, value)
    first = refreshed(parent)

    second = refreshed(parent)

    fields = ["best_value", "best_run_id", "best_params", "count", "min_value", "max_value", "mean_value", "std_value"]
    assert [getattr(first, f) for f in fields] == [getattr(second, f) for f in fields]


@pytest.mark.parametrize("children", [3, 60])
def test_the_queries_per_parent_do_not_grow_with_its_children(parent, children, django_assert_num_queries):
    for i in range(children):
        child(parent, i / children, params={"param1": str(i)})
    parent.summary_stale = True
    parent.save(update_fields=["summary_stale"])

    # Expect 9 queries: a savepoint (the run's own transaction, inside the test's), claim the run,
    # child stats, the best candidates (own values and child summaries, in one), the keys the
    # children logged on a dataset (none), the best run's params, delete vanished keys, upsert the
    # rest, release the savepoint.
    with django_assert_num_queries(9):
        assert summary_refresh.refresh_stale_run(parent.pk, parent_pk=None, goals={})


@pytest.mark.parametrize("children", [3, 60])
def test_summaries_by_dataset_cost_two_queries_more_whatever_the_children(parent, children, django_assert_num_queries):
    for i in range(children):
        scored(parent, train=0.9, test=i / children)
    parent.summary_stale = True
    parent.save(update_fields=["summary_stale"])

    # Expect 11 queries: the 9 above, the latest value of each key logged on a dataset per child
    # and dataset, and the start times and ids of the children that have one (to break ties).
    with django_assert_num_queries(11):
        assert summary_refresh.refresh_stale_run(parent.pk, parent_pk=None, goals={})
    assert RunSummary.objects.get(run=parent, key="accuracy · test").count == children


def scored(parent, *, train, test, **fields):
    """A child whose model scored `train` on its train set and `test` on its test set, logged
    through the write path as MLflow 3's log_metric(..., dataset=) sends them: the train score
    last, so the child's latest `accuracy` is its train score."""
    run = RunFactory(parent=parent, experiment=parent.experiment, **fields)
    run_log_batch(
        run=run,
        metrics=[
            MetricInput("accuracy", test, 1, 0, dataset_name="test", dataset_digest="t"),
            MetricInput("accuracy", train, 2, 0, dataset_name="train", dataset_digest="r"),
        ],
    )
    return run


def test_a_key_logged_on_several_datasets_is_summarised_per_dataset(parent):
    overfit = scored(parent, train=0.99, test=0.60)
    general = scored(parent, train=0.85, test=0.82)
    nan_on_test = scored(parent, train=0.70, test=math.nan)
    summary_refresh.recompute_all(experiment_id=parent.experiment_id)

    by_key = {summary.key: summary for summary in RunSummary.objects.filter(run=parent)}
    # The children's latest `accuracy` is their train score: a best of it would crown `overfit`.
    assert sorted(by_key) == ["accuracy · test", "accuracy · train"]
    test, train = by_key["accuracy · test"], by_key["accuracy · train"]
    assert (test.goal, test.best_value, test.best_run_id) == ("max", 0.82, general.pk)
    assert (train.best_value, train.best_run_id) == (0.99, overfit.pk)
    assert (test.count, test.min_value, test.max_value) == (2, 0.60, 0.82)  # the NaN is no value
    assert (train.count, train.mean_value) == (3, pytest.approx((0.99 + 0.85 + 0.70) / 3))
    assert train.std_value == pytest.approx(math.sqrt(sum((v - train.mean_value) ** 2 for v in (0.99, 0.85, 0.70)) / 3))
    assert nan_on_test.pk != test.best_run_id


def test_a_goal_set_on_the_key_holds_for_each_of_its_datasets(parent):
    ExperimentTag.objects.create(experiment=parent.experiment, key=GOAL_TAG_PREFIX + "accuracy", value="min")
    low = scored(parent, train=0.5, test=0.1)
    scored(parent, train=0.9, test=0.8)
    summary = refreshed(parent, "accuracy · test")
    assert (summary.goal, summary.best_run_id) == ("min", low.pk)


def test_a_dataset_series_best_rises_through_the_tree(parent):
    sweep = RunFactory(parent=parent, experiment=parent.experiment)
    deep = scored(sweep, train=0.70, test=0.95)
    scored(sweep, train=0.99, test=0.50)
    scored(parent, train=0.98, test=0.90)  # a direct child of the root, second best on test
    summary = refreshed(parent, "accuracy · test")
    assert (summary.best_value, summary.best_run_id) == (0.95, deep.pk)
    assert summary.count == 1  # the root's own children with a value: the sweep has none of its own


def test_a_run_claimed_by_another_worker_is_skipped(parent, django_assert_num_queries):
    child(parent, 0.5)  # summary_stale is False: someone else claimed it

    # Expect 3 queries: a savepoint, the claim (which finds nothing to update), release.
    with django_assert_num_queries(3):
        assert not summary_refresh.refresh_stale_run(parent.pk, parent_pk=None, goals={})
    assert not RunSummary.objects.filter(run=parent).exists()


def test_a_recompute_that_fails_leaves_the_run_stale(parent, monkeypatch):
    child(parent, 0.5)
    parent.summary_stale = True
    parent.save(update_fields=["summary_stale"])

    def crash(*args, **kwargs):
        raise RuntimeError("worker died")

    monkeypatch.setattr(summary_refresh, "recompute_summary", crash)
    with pytest.raises(RuntimeError):
        summary_refresh.refresh_stale_run(parent.pk, parent_pk=None, goals={})

    parent.refresh_from_db()
    assert parent.summary_stale


# --- reads for the APIs and pages -------------------------------------------------------------------


def test_reserved_tags_name_the_best_value_run_and_params(parent, django_assert_num_queries):
    best = child(parent, 0.125, params={"param2": "d", "param1": "a"})
    child(parent, 0.5)
    other_parent = RunFactory(experiment=parent.experiment)
    summary_refresh.recompute_all(experiment_id=parent.experiment_id)

    # Expect 1 query: the summaries with their best runs' ids.
    with django_assert_num_queries(1):
        tags = summary_reads.reserved_tags_for([parent.pk, other_parent.pk])

    assert tags == {
        parent.pk: [
            ("runtree.best.metric1", "0.125"),
            ("runtree.best.metric1.run_id", best.run_id),
            ("runtree.best.metric1.params.param1", "a"),
            ("runtree.best.metric1.params.param2", "d"),
        ],
        other_parent.pk: [],
    }
    assert float(tags[parent.pk][0][1]) == 0.125


def test_summaries_for_come_in_key_order_with_their_best_run(parent, django_assert_num_queries):
    best = child(parent, 0.1, key="zeta")
    LatestMetric.objects.create(run=best, key="alpha", value=1.0, timestamp=0)
    summary_refresh.recompute_all(experiment_id=parent.experiment_id)

    # Expect 1 query: summaries joined to their best runs.
    with django_assert_num_queries(1):
        found = summary_reads.summaries_for([parent.pk])
        names = [(s.key, s.best_run.run_id) for s in found[parent.pk]]

    assert names == [("alpha", best.run_id), ("zeta", best.run_id)]


def test_a_series_name_too_long_for_a_summary_row_is_left_out_and_the_rest_is_kept(parent):
    key = "k" * 250
    run = RunFactory(parent=parent, experiment=parent.experiment)
    run_log_batch(
        run=run,
        metrics=[
            MetricInput(key, 0.1, 1, 0, dataset_name="d" * 240),  # 493 characters with the key
            MetricInput(key, 0.2, 2, 0, dataset_name="e" * 400),  # 653: more than a summary key holds
        ],
    )
    summary_refresh.recompute_all(experiment_id=parent.experiment_id)
    assert list(RunSummary.objects.filter(run=parent).values_list("key", "best_value")) == [
        (f"{key} · {'d' * 240}", 0.1)
    ]
