"""The tree shows values without choosing columns (#17): the most-logged metrics, the params
that vary between siblings, and any key the filter or sort names."""

import pytest

from tests.dashboard.test_tree_page import row_html, tree_url
from tests.factories import ExperimentFactory, RunFactory
from tracker.models import Run, RunTag
from tracker.selectors import tree as tree_selectors
from tracker.selectors.tree import column_catalog
from tracker.services import KeyValue, MetricInput, run_log_batch
from tracker.summaries import refresh as summary_refresh

pytestmark = pytest.mark.django_db


def shown_columns(response) -> list[str]:
    return [column.name for column in response.context["state"].columns]


def test_with_no_columns_chosen_the_tree_shows_the_metric_and_the_varying_params(client, sweep):
    parent = Run.objects.get(name="parent-1")
    response = client.get(tree_url(sweep, expanded=parent.run_id))
    assert shown_columns(response) == ["metrics.metric1", "params.param1", "params.param2"]
    row = row_html(response, Run.objects.get(name="child-1-2"))
    assert ">0.4333<" in row  # metric1 = 1/3 + 0.1
    assert '<td class="text" title="c">c</td>' in row


def test_a_param_constant_in_every_sweep_is_not_a_default_column(client):
    experiment = ExperimentFactory(name="constant-param")
    parent = RunFactory(experiment=experiment, name="sweep")
    for i in range(3):
        child = RunFactory(experiment=experiment, parent=parent, name=f"c{i}")
        run_log_batch(
            run=child,
            params=[KeyValue("seed", "42"), KeyValue("lr", str(0.1 * (i + 1)))],
            metrics=[MetricInput("rmse", 1.0 / (i + 1), 1, 0)],
        )
    catalog = column_catalog(experiment)
    assert [column.name for column in catalog.defaults] == ["metrics.rmse", "params.lr"]
    assert catalog.primary_metric == "rmse"


def test_the_most_logged_metrics_come_first_and_at_most_four(client):
    experiment = ExperimentFactory(name="many-metrics")
    for i in range(3):
        run = RunFactory(experiment=experiment, name=f"r{i}")
        # `often` on every run, `e` on two, the rest on one (alphabetical among ties).
        keys = ["often", "a", "b", "c", "d", "e"] if i == 0 else ["often", "e"] if i == 1 else ["often"]
        run_log_batch(run=run, metrics=[MetricInput(key, 1.0, 1, 0) for key in keys])
    catalog = column_catalog(experiment)
    assert [column.key for column in catalog.defaults] == ["often", "e", "a", "b"]
    assert catalog.primary_metric == "often"


def test_keys_the_filter_and_the_sort_name_are_shown_too(client, sweep):
    response = client.get(tree_url(sweep, filter="tags.kind = 'odd' AND metrics.metric1 < 1", sort="-params.param2"))
    assert shown_columns(response) == ["metrics.metric1", "params.param1", "params.param2", "tags.kind"]


def test_chosen_columns_replace_the_defaults_and_an_empty_choice_shows_none(client, sweep):
    parent = Run.objects.get(name="parent-0")
    response = client.get(tree_url(sweep, expanded=parent.run_id, columns="tags.kind,params.param2"))
    assert shown_columns(response) == ["tags.kind", "params.param2"]
    assert '<td class="text" title="odd">odd</td>' in row_html(response, Run.objects.get(name="child-0-1"))
    assert shown_columns(client.get(tree_url(sweep, columns=""))) == []


def test_the_children_of_an_expanded_row_get_the_pages_default_columns(client, sweep):
    html = client.get(tree_url(sweep)).content.decode()
    assert 'data-columns="metrics.metric1,params.param1,params.param2"' in html
    assert "{#" not in html  # a template comment Django did not take for one shows as text


def test_the_best_child_column_defaults_to_the_most_logged_metric(client):
    experiment = ExperimentFactory(name="primary")
    parent = RunFactory(experiment=experiment, name="sweep")
    for i in range(3):
        child = RunFactory(experiment=experiment, parent=parent, name=f"c{i}")
        metrics = [MetricInput("r2", 0.5 + i / 10, 1, 0)]
        if i == 0:
            metrics.append(MetricInput("a_rare_metric", 1.0, 1, 0))
        run_log_batch(run=child, metrics=metrics)
    summary_refresh.recompute_all(experiment_id=experiment.id)
    response = client.get(tree_url(experiment))
    assert response.context["state"].best == "r2"


def test_among_metrics_logged_as_often_a_score_or_loss_comes_before_a_timing(client):
    experiment = ExperimentFactory(name="ridge")
    for i in range(2):
        run = RunFactory(experiment=experiment, name=f"r{i}")
        run_log_batch(run=run, metrics=[MetricInput(key, 1.0, 1, 0) for key in ("fit_time", "rmse", "r2")])
    catalog = column_catalog(experiment)
    assert [column.key for column in catalog.defaults] == ["r2", "rmse", "fit_time"]
    assert catalog.primary_metric == "r2"


def test_the_column_choices_offer_the_users_tags_and_not_mlflows_or_runtrees_own(client):
    experiment = ExperimentFactory(name="tagged")
    parent = RunFactory(experiment=experiment, name="sweep")
    for i in range(2):
        child = RunFactory(experiment=experiment, parent=parent, name=f"c{i}")
        # A key that merely begins like a system prefix is the user's.
        tags = [KeyValue("team", "vision"), KeyValue("mlflow.user", "ana"), KeyValue("mlflowish", "yes")]
        run_log_batch(run=child, params=[KeyValue("lr", str(i))], tags=tags)
        RunTag.objects.create(run=child, key="runtree.note", value="Runtree's own")  # the API refuses it
    catalog = column_catalog(experiment)
    tag_columns = [column.name for column in catalog.choices if column.kind == "tags"]
    assert tag_columns == ["tags.mlflowish", "tags.team"]
    assert "params.lr" in [column.name for column in catalog.choices]


def test_a_column_in_use_is_offered_though_the_latest_runs_never_logged_it(client, monkeypatch):
    # The choices come from the latest runs; a key only older runs logged was missing from the
    # menu, so pressing "Show columns" dropped the column the URL asked for.
    monkeypatch.setattr(tree_selectors, "KEY_SAMPLE_RUNS", 2)
    experiment = ExperimentFactory(name="old-keys")
    old = RunFactory(experiment=experiment, name="old", start_time=1_000)
    run_log_batch(run=old, params=[KeyValue("C", "1.0")], metrics=[MetricInput("accuracy", 0.9, 1, 0)])
    for index in range(2):
        run = RunFactory(experiment=experiment, name=f"new-{index}", start_time=2_000 + index)
        run_log_batch(run=run, metrics=[MetricInput("loss", 0.5, 1, 0)])
    html = client.get(tree_url(experiment, columns="metrics.accuracy,params.C")).content.decode()
    for name in ("metrics.accuracy", "params.C", "metrics.loss"):
        assert f'name="columns" value="{name}"' in html
