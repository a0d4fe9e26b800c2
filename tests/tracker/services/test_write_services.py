"""The write services enforce MLflow's rules in one place, atomically."""

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracker import services
from tracker.errors import InvalidParameterValue, ResourceAlreadyExists
from tracker.models import Experiment, LatestMetric, Metric, Param, RunTag
from tracker.services import KeyValue, MetricInput
from tracker.values import metric_sort_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(experiment):
    return services.run_create(experiment=experiment, name="trial")


def latest(run, key):
    return LatestMetric.objects.get(run=run, key=key)


def test_a_param_logged_again_with_the_same_value_is_accepted(run):
    services.run_log_param(run=run, key="lr", value="0.1")
    services.run_log_param(run=run, key="lr", value="0.1")
    assert list(Param.objects.filter(run=run).values_list("key", "value")) == [("lr", "0.1")]


def test_a_param_logged_again_with_a_different_value_is_refused_and_the_first_value_kept(run):
    services.run_log_param(run=run, key="lr", value="0.1")
    with pytest.raises(InvalidParameterValue, match="Changing param values is not allowed.*lr"):
        services.run_log_param(run=run, key="lr", value="0.2")
    assert Param.objects.get(run=run, key="lr").value == "0.1"


def test_a_refused_batch_leaves_nothing_behind(run):
    services.run_log_param(run=run, key="lr", value="0.1")
    with pytest.raises(InvalidParameterValue):
        services.run_log_batch(
            run=run,
            metrics=[MetricInput("loss", 1.0, 1)],
            params=[KeyValue("depth", "3"), KeyValue("lr", "0.5")],
            tags=[KeyValue("team", "a")],
        )
    assert not Metric.objects.filter(run=run).exists()
    assert not Param.objects.filter(run=run, key="depth").exists()
    assert not RunTag.objects.filter(run=run, key="team").exists()


def test_a_key_longer_than_250_characters_is_refused(run):
    services.run_log_param(run=run, key="k" * 250, value="ok")
    with pytest.raises(InvalidParameterValue, match="251 characters long; the limit is 250"):
        services.run_log_param(run=run, key="k" * 251, value="no")


@pytest.mark.parametrize("bad_key", ["", "../etc", "a\nb", "semi;colon", "/abs"])
def test_a_malformed_key_is_refused(run, bad_key):
    with pytest.raises(InvalidParameterValue):
        services.run_set_tag(run=run, key=bad_key, value="x")


@pytest.mark.parametrize(
    ("kind", "count", "limit"), [("metrics", 1001, 1000), ("params", 101, 100), ("tags", 101, 100)]
)
def test_a_batch_over_mlflows_limits_is_refused(run, kind, count, limit):
    items = {
        "metrics": [MetricInput(f"m{i}", 1.0, 1) for i in range(count)],
        "params": [KeyValue(f"p{i}", "v") for i in range(count)],
        "tags": [KeyValue(f"t{i}", "v") for i in range(count)],
    }[kind]
    with pytest.raises(InvalidParameterValue, match=f"{count} {kind}; the limit is {limit}"):
        services.run_log_batch(run=run, **{kind: items})


def test_long_param_and_tag_values_are_stored_in_full(run):
    # MLflow truncates at 6,000 / 8,000 characters; Runtree keeps every character.
    long_value = "abcdefghij" * 50_000
    services.run_log_param(run=run, key="config", value=long_value)
    services.run_set_tag(run=run, key="notes", value=long_value)
    assert Param.objects.get(run=run, key="config").value == long_value
    assert RunTag.objects.get(run=run, key="notes").value == long_value


def test_a_value_over_one_mebibyte_is_refused_with_its_size(run):
    with pytest.raises(InvalidParameterValue, match="1048577 bytes"):
        services.run_log_param(run=run, key="blob", value="x" * (1024 * 1024 + 1))
    assert not Param.objects.filter(run=run).exists()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "NaN", "Infinity", "-Infinity"])
def test_nan_and_infinities_round_trip(run, value):
    services.run_log_metric(run=run, metric=MetricInput("score", value, 1))
    expected = float(value)
    stored = Metric.objects.get(run=run, key="score").float_value
    assert (math.isnan(stored) and math.isnan(expected)) or stored == expected
    assert (math.isnan(latest(run, "score").float_value) and math.isnan(expected)) or latest(
        run, "score"
    ).float_value == expected


def test_a_metric_that_is_not_a_number_is_refused(run):
    with pytest.raises(InvalidParameterValue, match="not a number"):
        services.run_log_metric(run=run, metric=MetricInput("score", "high", 1))
    with pytest.raises(InvalidParameterValue, match="must be a number"):
        services.run_log_metric(run=run, metric=MetricInput("score", [1], 1))


class TestLatestMetricRule:
    """MLflow's rule: highest step, then latest timestamp, then highest value."""

    def test_a_higher_step_wins_even_if_older(self, run):
        services.run_log_metric(run=run, metric=MetricInput("loss", 5.0, timestamp=200, step=1))
        services.run_log_metric(run=run, metric=MetricInput("loss", 3.0, timestamp=100, step=2))
        assert latest(run, "loss").value == 3.0

    def test_a_lower_step_does_not_replace_the_latest(self, run):
        services.run_log_metric(run=run, metric=MetricInput("loss", 3.0, timestamp=100, step=2))
        services.run_log_metric(run=run, metric=MetricInput("loss", 9.0, timestamp=900, step=1))
        assert latest(run, "loss").value == 3.0
        assert Metric.objects.filter(run=run, key="loss").count() == 2

    def test_on_the_same_step_the_later_timestamp_wins(self, run):
        services.run_log_metric(run=run, metric=MetricInput("loss", 5.0, timestamp=200, step=1))
        services.run_log_metric(run=run, metric=MetricInput("loss", 7.0, timestamp=300, step=1))
        assert latest(run, "loss").value == 7.0

    def test_on_the_same_step_and_timestamp_the_higher_value_wins(self, run):
        services.run_log_batch(run=run, metrics=[MetricInput("loss", 4.0, 100, 1), MetricInput("loss", 6.0, 100, 1)])
        services.run_log_metric(run=run, metric=MetricInput("loss", 5.0, timestamp=100, step=1))
        assert latest(run, "loss").value == 6.0


_fresh_keys = (f"key{n}" for n in itertools.count())
_values = st.sampled_from([0.0, 1.0, -1.0, 2.5, math.nan, math.inf, -math.inf])
_logs = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), _values), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(logs=_logs, batch_size=st.integers(1, 3))
def test_the_stored_latest_value_follows_the_rule_whatever_the_order(run, logs, batch_size):
    """The database keeps "latest" by an SQL condition (tracker/hot_sql.py); it must agree
    with values.metric_sort_key, the rule's Python form, for any order of values, NaN and
    infinities included, logged one at a time or in batches."""
    key = next(_fresh_keys)
    metrics = [MetricInput(key, value, timestamp, step) for step, timestamp, value in logs]
    for start in range(0, len(metrics), batch_size):
        services.run_log_batch(run=run, metrics=metrics[start : start + batch_size])
    stored = latest(run, key)
    expected = max(
        metrics, key=lambda m: metric_sort_key(m.step, m.timestamp, None if math.isnan(m.value) else m.value)
    )
    assert (stored.step, stored.timestamp) == (expected.step, expected.timestamp)
    assert (stored.value is None) if math.isnan(expected.value) else stored.value == expected.value


def test_creating_an_experiment_twice_is_refused(db):
    services.experiment_create(name="sweeps")
    with pytest.raises(ResourceAlreadyExists, match="'sweeps' already exists"):
        services.experiment_create(name="sweeps")


def test_a_rename_that_loses_the_race_for_a_name_is_refused_as_already_existing(db, monkeypatch):
    mine = services.experiment_create(name="mine")
    save = Experiment.save

    def save_after_another_writer_took_the_name(self, *args, **kwargs):
        if not Experiment.objects.filter(name="wanted").exists():
            save(Experiment(name="wanted", creation_time=0, last_update_time=0))
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Experiment, "save", save_after_another_writer_took_the_name)
    with pytest.raises(ResourceAlreadyExists, match="'wanted' already exists"):
        services.experiment_rename(experiment=mine, new_name="wanted")
    assert Experiment.objects.get(pk=mine.pk).name == "mine"


def test_a_deleted_run_refuses_writes(run):
    services.run_set_lifecycle(run=run, stage="deleted")
    with pytest.raises(InvalidParameterValue, match="must be in the 'active' state"):
        services.run_log_param(run=run, key="lr", value="1")


def test_a_run_gets_a_name_and_server_kept_tags(experiment):
    run = services.run_create(experiment=experiment)
    tags = dict(RunTag.objects.filter(run=run).values_list("key", "value"))
    assert run.name and tags["mlflow.runName"] == run.name
    assert tags["mlflow.rootRunId"] == run.run_id
    assert len(run.run_id) == 32 and int(run.run_id, 16) >= 0


def test_clients_cannot_write_the_reserved_runtree_namespace(run):
    with pytest.raises(InvalidParameterValue, match="reserved 'runtree.' namespace"):
        services.run_set_tag(run=run, key="runtree.best.metric1", value="0")


def test_an_experiment_goal_tag_must_be_min_or_max(experiment):
    with pytest.raises(InvalidParameterValue, match="'min' or 'max'"):
        services.experiment_set_tag(experiment=experiment, key="runtree.goal.loss", value="lowest")
    services.experiment_set_tag(experiment=experiment, key="runtree.goal.loss", value="max")
    assert experiment.tag_dict() == {"runtree.goal.loss": "max"}
