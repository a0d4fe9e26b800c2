"""Pages rank a metric by the goal its name suggests unless the experiment sets one (#17)."""

import re
from urllib.parse import unquote_plus

import pytest

from tests.dashboard.test_tree_page import tree_url
from tests.factories import ExperimentFactory, RunFactory
from tracker.goals import goal_tag
from tracker.services import MetricInput, experiment_set_tag, run_log_batch
from tracker.summaries import refresh as summary_refresh

pytestmark = pytest.mark.django_db


@pytest.fixture
def classifier_sweep(db):
    experiment = ExperimentFactory(name="classifier")
    parent = RunFactory(experiment=experiment, name="sweep")
    for name, accuracy, loss in [("weak", 0.55, 0.9), ("strong", 0.93, 0.2), ("middling", 0.7, 0.5)]:
        child = RunFactory(experiment=experiment, parent=parent, name=name)
        run_log_batch(run=child, metrics=[MetricInput("accuracy", accuracy, 1, 0), MetricInput("loss", loss, 1, 0)])
    summary_refresh.recompute_all(experiment_id=experiment.id)
    return experiment


def header_links(response) -> dict[str, str]:
    """Column ("metric loss", "best accuracy") → the sort its header links to."""
    html = response.content.decode()
    links = re.findall(r'<a href="\?([^"]*)"><span class="kind">([^<]*)</span> <span class="key">([^<]+)</span>', html)
    return {f"{kind} {key}": re.search(r"sort=([^&]*)", query).group(1) for query, kind, key in links}


def test_accuracy_is_best_when_highest_and_loss_when_lowest(client, classifier_sweep):
    response = client.get(tree_url(classifier_sweep, best="accuracy"))
    parent = next(run for run in response.context["tree"].rows if run.name == "sweep")
    assert parent.best.best_run.name == "strong" and parent.best.goal == "max"
    goals = {choice.key: (choice.goal, choice.is_set) for choice in response.context["goals"]}
    assert goals == {"accuracy": ("max", False), "loss": ("min", False)}
    assert ">from name<" in response.content.decode()


def test_the_first_click_on_a_metric_column_sorts_best_first(client, classifier_sweep):
    links = header_links(client.get(tree_url(classifier_sweep)))
    assert links["metric accuracy"] == "-metrics.accuracy"  # highest first
    assert links["metric loss"] == "metrics.loss"  # lowest first
    assert links["best accuracy"] == "-summary.accuracy"


def test_an_explicit_goal_tag_wins_and_the_page_says_it_is_set(client, classifier_sweep, eager_celery):
    experiment_set_tag(experiment=classifier_sweep, key=goal_tag("accuracy"), value="min")
    summary_refresh.recompute_all(experiment_id=classifier_sweep.id)
    response = client.get(tree_url(classifier_sweep, best="accuracy"))
    parent = next(run for run in response.context["tree"].rows if run.name == "sweep")
    assert parent.best.best_run.name == "weak"
    assert ">set<" in response.content.decode()
    assert header_links(response)["metric accuracy"] == "metrics.accuracy"
    assert header_links(response)["best accuracy"] == "summary.accuracy"


def test_a_key_summarised_per_dataset_has_one_goal_switch_that_ranks_every_dataset(client, db, eager_celery):
    experiment = ExperimentFactory(name="scored on datasets")
    parent = RunFactory(experiment=experiment, name="sweep")
    for name, train, test in [("overfit", 0.99, 0.6), ("general", 0.85, 0.82)]:
        child = RunFactory(experiment=experiment, parent=parent, name=name)
        run_log_batch(
            run=child,
            metrics=[
                MetricInput("accuracy", test, 1, 0, dataset_name="test"),
                MetricInput("accuracy", train, 2, 0, dataset_name="train"),
            ],
        )
    summary_refresh.recompute_all(experiment_id=experiment.id)
    response = client.get(tree_url(experiment, best="accuracy · test"))
    assert [choice.key for choice in response.context["goals"]] == ["accuracy"]
    sort = unquote_plus(header_links(response)["best accuracy · test"])
    assert sort == "-summary.accuracy · test"  # highest first, as accuracy's goal is
    assert client.get(tree_url(experiment, best="accuracy · test", sort=sort)).status_code == 200
    # Setting the key's goal ranks each of its datasets' summaries by it.
    experiment_set_tag(experiment=experiment, key=goal_tag("accuracy"), value="min")
    summary_refresh.recompute_all(experiment_id=experiment.id)
    response = client.get(tree_url(experiment, best="accuracy · test"))
    parent_row = next(run for run in response.context["tree"].rows if run.name == "sweep")
    assert (parent_row.best.best_run.name, parent_row.best.goal) == ("overfit", "min")
    assert unquote_plus(header_links(response)["best accuracy · test"]) == "summary.accuracy · test"
