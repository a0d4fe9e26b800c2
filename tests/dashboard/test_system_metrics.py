"""MLflow's system metrics (`system/cpu_utilization_percentage`, ... logged by
`start_run(log_system_metrics=True)`) describe the machine, not the model: no summary, best-child
tag, band or param importance is built on them, the tree never shows them unasked, and the run and
compare pages list them after the model's metrics."""

import re

import pytest
from django.core.cache import cache

from tests.factories import ExperimentFactory, RunFactory
from tracker.models import ChildBands, ParamImportance, RunSummary
from tracker.selectors.tree import column_catalog
from tracker.services import KeyValue, MetricInput, run_log_batch
from tracker.summaries import refresh as summary_refresh
from tracker.summaries.bands import refresh_bands
from tracker.summaries.importance import MIN_CHILDREN, refresh_importance

pytestmark = pytest.mark.django_db

# What mlflow.system_metrics logs on a machine without a GPU, in one sample.
SYSTEM_METRICS = {
    "system/cpu_utilization_percentage": 12.5,
    "system/system_memory_usage_megabytes": 1440.0,
    "system/disk_usage_percentage": 25.1,
    "system/network_receive_megabytes": 0.01,
}


@pytest.fixture(autouse=True)
def no_cached_bands():
    cache.clear()


def trial(parent, number: int, *, steps: int = 3):
    """A child logging `val_loss` and `accuracy` that depend on its `lr`, and system metrics that
    do not, each at `steps` steps, as a script with system metrics logging on does."""
    child = RunFactory(experiment=parent.experiment, parent=parent, name=f"trial-{number}")
    lr = 10.0 ** -(number % 4 + 1)
    run_log_batch(run=child, params=[KeyValue("lr", repr(lr)), KeyValue("depth", str(number % 3 + 2))])
    for step in range(steps):
        model = {"val_loss": lr * (steps - step), "accuracy": 1 - lr}
        # The machine is busiest on the worst trial: a "best" by system metrics would name another.
        system = {key: value * (number + 1) for key, value in SYSTEM_METRICS.items()}
        run_log_batch(
            run=child,
            metrics=[MetricInput(key, value, 1_000 + step, step) for key, value in {**model, **system}.items()],
        )
    return child


@pytest.fixture
def sweep():
    parent = RunFactory(experiment=ExperimentFactory(name="with-system-metrics"), name="sweep")
    for number in range(MIN_CHILDREN + 2):
        trial(parent, number)
    summary_refresh.recompute_all(experiment_id=parent.experiment_id)
    return parent


def test_a_parent_summarises_the_models_metrics_and_none_of_the_machines(sweep):
    keys = set(RunSummary.objects.filter(run=sweep).values_list("key", flat=True))
    assert keys == {"accuracy", "val_loss"}


def test_the_mlflow_api_gives_no_best_tag_for_a_system_metric(client, sweep):
    response = client.get("/api/2.0/mlflow/runs/get", {"run_id": sweep.run_id})
    tags = {tag["key"] for tag in response.json()["run"]["data"]["tags"]}
    assert "runtree.best.val_loss" in tags
    assert not [key for key in tags if "system/" in key]


def test_a_metric_named_System_with_a_capital_is_the_models_and_is_summarised(sweep):
    child = RunFactory(experiment=sweep.experiment, parent=sweep)
    run_log_batch(run=child, metrics=[MetricInput("System/latency", 3.0, 1, 0)])
    summary_refresh.recompute_all(experiment_id=sweep.experiment_id)
    assert RunSummary.objects.filter(run=sweep, key="System/latency").exists()


def test_no_band_and_no_param_importance_is_kept_for_a_system_metric(sweep):
    refresh_bands(parent_pk=sweep.pk)
    refresh_importance(parent_pk=sweep.pk)
    kept_bands = {band["key"] for band in ChildBands.objects.get(run=sweep).bands}
    assert kept_bands == {"accuracy", "val_loss"}
    assert set(ParamImportance.objects.filter(run=sweep).values_list("key", flat=True)) == {"accuracy", "val_loss"}


def test_the_tree_shows_the_models_metrics_unasked_and_offers_the_machines(sweep):
    catalog = column_catalog(sweep.experiment)
    assert [column.name for column in catalog.defaults] == [
        "metrics.accuracy",
        "metrics.val_loss",
        "params.depth",
        "params.lr",
    ]
    assert catalog.primary_metric == "accuracy"
    assert "metrics.system/cpu_utilization_percentage" in [column.name for column in catalog.choices]


def test_the_tree_page_offers_no_goal_and_no_best_child_by_a_system_metric(client, sweep):
    page = client.get(f"/experiments/{sweep.experiment_id}/").content.decode()
    assert "val_loss" in page
    assert "system/" not in page.split('name="columns"')[0]  # goals and best-child choices come first
    assert 'value="metrics.system/cpu_utilization_percentage"' in page  # still a column to choose


def test_a_parents_page_has_summaries_bands_and_importance_of_the_models_metrics_only(client, sweep):
    refresh_importance(parent_pk=sweep.pk)
    context = client.get(f"/runs/{sweep.run_id}/").context
    assert [summary.key for summary in context["overview"].summaries] == ["accuracy", "val_loss"]
    assert [chart.key for chart in context["importance"]] == ["accuracy", "val_loss"]
    band_titles = [chart["figure"]["layout"]["title"]["text"] for chart in context["bands"].figures]
    assert band_titles and not [title for title in band_titles if "system/" in title]
    assert [column.key for column in context["overview"].child_columns] == ["accuracy", "val_loss"]


def test_a_childs_page_lists_its_system_metrics_after_the_models_under_their_own_heading(client, sweep):
    child = sweep.children.get(name="trial-2")
    response = client.get(f"/runs/{child.run_id}/")
    page = response.content.decode()
    metrics_card = page[page.index("<h2>Metrics") :]
    keys = re.findall(r'<th scope="row" title="([^"]+)"', metrics_card[: metrics_card.index("</table>")])
    assert keys == ["accuracy", "val_loss", *sorted(SYSTEM_METRICS)]
    assert metrics_card.index("val_loss") < metrics_card.index("System metrics") < metrics_card.index("system/")
    # Under their heading the prefix is left off the names (a phone has room for little else).
    assert 'title="system/cpu_utilization_percentage">cpu_utilization_percentage</th>' in metrics_card

    charts = response.context["charts"]
    titles = [chart["figure"]["layout"]["title"]["text"] for chart in charts.figures]
    system_titles = [chart["figure"]["layout"]["title"]["text"] for chart in charts.system_figures]
    assert titles and not [title for title in titles if title.startswith("system/")]
    assert system_titles and all(title.startswith("system/") for title in system_titles)
    # Every chart is drawn: the ids are unique across both groups.
    ids = [chart["id"] for chart in charts.figures + charts.system_figures]
    assert len(ids) == len(set(ids)) and all(f'data-figure="{chart_id}"' in page for chart_id in ids)


def test_compare_lists_the_models_metrics_before_the_machines_and_picks_one_of_the_models(client, sweep):
    response = client.get("/compare/", {"parent": sweep.run_id})
    table = response.context["table"]
    assert table.metric_keys[:2] == ["accuracy", "val_loss"]
    assert all(key.startswith("system/") for key in table.metric_keys[2:]) and len(table.metric_keys) == 6
    assert response.context["state"].metric in ("accuracy", "val_loss")
    # None is "best" by the machine's metrics: no highlight, no goal arrow.
    system_column = table.metric_keys.index("system/cpu_utilization_percentage") + len(table.param_keys)
    assert table.goals["system/cpu_utilization_percentage"] == ""
    assert not [row for row in table.rows if "best" in row.cells[system_column].css]
    assert [row for row in table.rows if "best" in row.cells[len(table.param_keys)].css]  # accuracy has one


def test_compare_says_a_system_metric_has_no_param_importance(client, sweep):
    response = client.get("/compare/", {"parent": sweep.run_id, "metric": "system/cpu_utilization_percentage"})
    assert "is a system metric" in response.content.decode()


def test_a_batch_of_system_metrics_alone_leaves_the_parents_summary_as_it_is(sweep):
    child = sweep.children.get(name="trial-0")
    run_log_batch(run=child, metrics=[MetricInput(key, 99.0, 9_000, 9) for key in SYSTEM_METRICS])
    sweep.refresh_from_db()
    assert not sweep.summary_stale
    run_log_batch(run=child, metrics=[MetricInput("val_loss", 0.5, 9_000, 9)])
    sweep.refresh_from_db()
    assert sweep.summary_stale  # a model's metric does mark it (its refresh waits for the commit)
