import numpy as np
import pytest

from tests.factories import RunFactory
from tracker import tasks
from tracker.models import LatestMetric, Param
from tracker.summaries import refresh
from tracker.summaries.importance import MIN_CHILDREN, refresh_importance

pytestmark = pytest.mark.django_db


def sweep(children: int):
    """A parent whose children's `loss` is driven by a log-uniform `lr`; summaries computed."""
    parent = RunFactory(name="sweep")
    generator = np.random.default_rng(5)
    for number in range(children):
        child = RunFactory(parent=parent, name=f"c{number}")
        lr = 10 ** generator.uniform(-5, -1)
        batch = str(32 * (number % 2 + 1))
        Param.objects.bulk_create([Param(run=child, key="lr", value=repr(lr)), Param(run=child, key="b", value=batch)])
        LatestMetric.objects.create(run=child, key="loss", value=float(np.log10(lr) ** 2), timestamp=0, step=0)
    refresh.recompute_all(experiment_id=parent.experiment_id)
    return parent


def test_compare_children_shows_the_stored_importance_chart(client):
    parent = sweep(MIN_CHILDREN + 5)
    refresh_importance(parent_pk=parent.pk)
    response = client.get("/compare/", {"parent": parent.run_id, "metric": "loss"})
    chart = response.context["importance"]
    bars = chart.figure["data"][0]
    assert bars["orientation"] == "h" and bars["y"][-1] == "lr (log)"  # most important on top
    assert "Param importance for loss" in chart.figure["layout"]["title"]["text"]
    # What the colours mean is written under the chart, where it wraps on a phone.
    caption = f"over {MIN_CHILDREN + 5} children. Blue: a higher param goes with a higher loss"
    assert caption in response.content.decode()


def test_compare_children_says_why_the_importance_is_absent(client, monkeypatch):
    parent = sweep(4)
    response = client.get("/compare/", {"parent": parent.run_id, "metric": "loss"})
    assert response.context["importance"].figure is None
    assert "needs at least 10 children with a value of it; 4 have one" in response.content.decode()
    bigger = sweep(MIN_CHILDREN)
    # No broker (tasks in-process): no worker will ever fit it, and the page says what to start.
    chart = client.get("/compare/", {"parent": bigger.run_id, "metric": "loss"}).context["importance"]
    assert chart.figure is None and "fitted by the Celery worker, and none runs here" in chart.reason
    # With a worker: it is on its way (never fitted in the request).
    monkeypatch.setattr(tasks, "in_process", lambda: False)
    chart = client.get("/compare/", {"parent": bigger.run_id, "metric": "loss"}).context["importance"]
    assert chart.figure is None and "being computed" in chart.reason


def test_the_parents_run_page_shows_the_importance_per_summarised_metric(client, django_assert_num_queries):
    parent = sweep(MIN_CHILDREN + 1)
    refresh_importance(parent_pk=parent.pk)
    response = client.get(f"/runs/{parent.run_id}/")
    (chart,) = response.context["importance"]
    assert chart.key == "loss" and chart.figure["data"][0]["y"][-1] == "lr (log)"
    assert 'id="importance-0"' in response.content.decode()
    # Expect 15 queries: the run page's 13 for a root parent (its summaries, the live poll's
    # starting version, its datasets, logged models, registrations and the children's badges
    # included), the charts' point counts, and the stored importance; the bands (none: these
    # children log no history) were read by the first request, for the same summaries.
    with django_assert_num_queries(15):
        client.get(f"/runs/{parent.run_id}/")
