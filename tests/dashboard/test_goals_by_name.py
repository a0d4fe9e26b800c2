"""Pages rank a metric by the goal its name suggests unless the experiment sets one (#17)."""

import re

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
