"""The tree's live poll (#17): one query when nothing changed, the view's rows when something did."""

import re

import pytest
from django.core.cache import cache

from tests.dashboard.test_tree_page import row_ids
from tests.factories import ExperimentFactory, RunFactory
from tracker import services
from tracker.models import DELETED, Run, RunStatus
from tracker.services import MetricInput, run_log_batch, run_set_lifecycle, run_update
from tracker.summaries.refresh import refresh_tree

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_shared_rows():
    """Polls share rendered rows for a second (dashboard/views.py); not across tests."""
    cache.clear()


@pytest.fixture
def running_sweep(db):
    experiment = ExperimentFactory(name="live")
    parent = RunFactory(experiment=experiment, name="sweep", status=RunStatus.RUNNING, end_time=None)
    first = RunFactory(experiment=experiment, parent=parent, name="trial-0", status=RunStatus.RUNNING, end_time=None)
    run_log_batch(run=first, metrics=[MetricInput("loss", 0.9, 1_700_000_000_000, 0)])
    return experiment, parent, first


def poll(client, experiment, since, **query):
    return client.get(f"/experiments/{experiment.id}/live/", {"since": since, **query})


def version_of(client, experiment) -> str:
    response = client.get(f"/experiments/{experiment.id}/")
    return re.search(r'data-version="([^"]+)"', response.content.decode()).group(1)


def test_an_unchanged_experiment_answers_204_with_one_query(client, running_sweep, django_assert_num_queries):
    experiment, _, _ = running_sweep
    version = version_of(client, experiment)
    # Expect 1 query: the experiment's change markers (tracker/hot_sql.py live_version).
    with django_assert_num_queries(1):
        response = poll(client, experiment, version)
    assert response.status_code == 204 and response.content == b""
    assert response["X-Runtree-Version"] == version
    assert response["X-Runtree-Running"] == "2"


@pytest.mark.parametrize(
    "change",
    ["a new child", "a metric point", "the run ends", "the run is deleted", "the summary is refreshed"],
)
def test_every_change_a_viewer_sees_moves_the_version(client, running_sweep, change):
    experiment, parent, first = running_sweep
    if change == "the summary is refreshed":
        # A write to a finished child marks its parent stale; what moves is the refresh landing.
        Run.objects.filter(pk=parent.pk).update(summary_stale=True)
    before = version_of(client, experiment)
    if change == "the summary is refreshed":
        refresh_tree(root_pk=parent.pk)
    elif change == "a new child":
        RunFactory(experiment=experiment, parent=parent, name="trial-1", status=RunStatus.RUNNING, end_time=None)
    elif change == "a metric point":
        run_log_batch(run=first, metrics=[MetricInput("loss", 0.5, 1_700_000_000_100, 1)])
    elif change == "the run ends":
        run_update(run=first, status=RunStatus.FINISHED, end_time=1_700_000_001_000)
    else:
        run_set_lifecycle(run=first, stage=DELETED)
    response = poll(client, experiment, before)
    assert response.status_code == 200
    assert response["X-Runtree-Version"] != before


def test_a_changed_experiment_sends_the_rows_of_the_view_the_page_shows(client, running_sweep):
    experiment, parent, first = running_sweep
    before = version_of(client, experiment)
    second = RunFactory(experiment=experiment, parent=parent, name="trial-1", status=RunStatus.RUNNING, end_time=None)
    run_log_batch(run=second, metrics=[MetricInput("loss", 0.4, 1_700_000_000_000, 0)])
    response = poll(client, experiment, before, expanded=parent.run_id, columns="metrics.loss")
    assert row_ids(response)[:1] == [parent.run_id]
    assert set(row_ids(response)) == {parent.run_id, first.run_id, second.run_id}
    assert ">0.4000<" in response.content.decode()


# Queries of a changed poll: the change markers (1), the experiment (1), then the tree page with
# the page's columns, as tracker/tree.py's tree_page lists them: roots count and page (2),
# children of the expanded runs (1), latest metrics for the column (1), the rows' descriptions
# (1), summaries of the shown parents for the best-child column (1), the rows' registered-model
# badges (1).
LIVE_CHANGED_QUERIES = 9


def test_pages_showing_one_view_share_its_rows_for_a_second(client, running_sweep, django_assert_num_queries):
    experiment, parent, _ = running_sweep
    first = poll(client, experiment, "old", expanded=parent.run_id)
    assert first.status_code == 200
    # Expect 1 query: the change markers; the rows come from the first page's render.
    with django_assert_num_queries(1):
        second = poll(client, experiment, "older", expanded=parent.run_id)
    assert second.content == first.content and second["X-Runtree-Version"] == first["X-Runtree-Version"]


def test_a_changed_poll_costs_a_fixed_number_of_queries(client, running_sweep, django_assert_max_num_queries):
    experiment, parent, _ = running_sweep
    for i in range(30):
        RunFactory(experiment=experiment, parent=parent, name=f"more-{i}")
    with django_assert_max_num_queries(LIVE_CHANGED_QUERIES):
        response = poll(client, experiment, "stale", expanded=parent.run_id, columns="metrics.loss", best="loss")
    assert response.status_code == 200


def test_the_tree_page_shows_the_live_switch_only_while_something_runs(client, running_sweep):
    experiment, parent, first = running_sweep
    html = client.get(f"/experiments/{experiment.id}/").content.decode()
    assert 'data-state="on"' in html and "Live: 2 running" in html
    for run in (first, parent):
        run_update(run=run, status=RunStatus.FINISHED, end_time=1_700_000_001_000)
    html = client.get(f"/experiments/{experiment.id}/").content.decode()
    assert 'data-state="idle"' in html and "nothing running" in html


# --- the run page ----------------------------------------------------------------------------


def test_the_run_page_poll_is_one_query_and_moves_with_its_metrics_and_children(
    client, running_sweep, django_assert_num_queries
):
    _, parent, first = running_sweep
    html = client.get(f"/runs/{parent.run_id}/").content.decode()
    version = re.search(r'data-version="([^"]+)"', html).group(1)
    assert f'data-live-url="/runs/{parent.run_id}/live/"' in html
    # Expect 1 query: the run's change markers (tracker/hot_sql.py runs_live_versions).
    with django_assert_num_queries(1):
        response = client.get(f"/runs/{parent.run_id}/live/", {"since": version})
    assert response.status_code == 204
    assert response["X-Runtree-Running"] == "2"  # the parent and its running child

    run_log_batch(run=parent, metrics=[MetricInput("lr", 0.1, 1_700_000_000_000, 0)])
    moved = client.get(f"/runs/{parent.run_id}/live/", {"since": version})
    assert moved.status_code == 200 and moved["X-Runtree-Version"] != version
    RunFactory(experiment=parent.experiment, parent=parent, name="trial-9")
    assert client.get(f"/runs/{parent.run_id}/live/", {"since": moved["X-Runtree-Version"]}).status_code == 200
    assert client.get("/runs/nope/live/").status_code == 404


def test_nanosecond_steps_leave_every_live_page_working_and_still_move_the_version(client, running_sweep):
    # MLflow takes any int64 step; six latest steps of ~1.7e18 add up past 2^63, where SQLite's
    # SUM raises: the run page, its poll, the tree's poll and compare answered 503.
    experiment, parent, first = running_sweep
    nanoseconds = 1_764_900_000_000_000_000
    metrics = [MetricInput(f"m{index}", 0.5, 1_700_000_000_000, nanoseconds + index) for index in range(6)]
    run_log_batch(run=first, metrics=metrics)
    tree_version = version_of(client, experiment)
    html = client.get(f"/runs/{first.run_id}/").content.decode()
    run_version = re.search(r'data-version="([^"]+)"', html).group(1)
    assert client.get("/compare/", {"parent": parent.run_id}).status_code == 200
    assert poll(client, experiment, tree_version).status_code == 204
    assert client.get(f"/runs/{first.run_id}/live/", {"since": run_version}).status_code == 204

    # A later point at the same time and a higher step is still seen.
    run_log_batch(run=first, metrics=[MetricInput("m0", 0.4, 1_700_000_000_000, nanoseconds + 1_000)])
    assert poll(client, experiment, tree_version).status_code == 200
    assert client.get(f"/runs/{first.run_id}/live/", {"since": run_version}).status_code == 200


# --- compare sweeps ----------------------------------------------------------------------------


def test_compare_sweeps_polls_all_its_parents_in_one_query_and_moves_with_any_of_them(
    client, running_sweep, django_assert_num_queries, django_capture_on_commit_callbacks
):
    experiment, parent, _ = running_sweep
    other = RunFactory(experiment=experiment, name="sweep-2", status=RunStatus.FINISHED)
    RunFactory(experiment=experiment, parent=other, name="trial-b", status=RunStatus.FINISHED)
    html = client.get("/compare/", {"parents": f"{parent.run_id},{other.run_id}"}).content.decode()
    live_url = f"/compare/live/?parents={parent.run_id}%2C{other.run_id}"
    assert f'data-live-url="{live_url}"' in html and 'data-state="on"' in html
    version = re.search(r'data-version="([^"]+)"', html).group(1)
    parents = {"parents": f"{parent.run_id},{other.run_id}"}
    # Expect 1 query: both parents' change markers (tracker/hot_sql.py runs_live_versions).
    with django_assert_num_queries(1):
        response = client.get("/compare/live/", {**parents, "since": version})
    assert response.status_code == 204
    assert response["X-Runtree-Running"] == "2"  # the first parent and its running child

    # A new child of the finished sweep moves the version, as one of the running sweep would.
    RunFactory(experiment=experiment, parent=other, name="trial-c")
    moved = client.get("/compare/live/", {**parents, "since": version})
    assert moved.status_code == 200 and moved["X-Runtree-Version"] != version
    # A child's new best moves its parent's summary (refreshed after the write commits).
    with django_capture_on_commit_callbacks(execute=True):
        run_log_batch(run=parent.children.get(), metrics=[MetricInput("loss", 0.5, 1_700_000_000_001, 1)])
    assert client.get("/compare/live/", {**parents, "since": moved["X-Runtree-Version"]}).status_code == 200
    unknown = client.get("/compare/live/", {"parents": "nope,gone"})
    assert unknown.status_code == 404 and "parents" in unknown.json()["error"]


def test_compare_sweeps_of_finished_sweeps_offers_watching_without_polling(client, db):
    experiment = ExperimentFactory(name="done")
    parents = [RunFactory(experiment=experiment, name=f"sweep-{n}", status=RunStatus.FINISHED) for n in range(2)]
    for parent in parents:
        RunFactory(experiment=experiment, parent=parent, status=RunStatus.FINISHED)
    html = client.get("/compare/", {"parents": ",".join(parent.run_id for parent in parents)}).content.decode()
    assert 'data-state="idle"' in html and "nothing running" in html


def test_a_page_on_the_default_columns_is_told_of_new_ones_and_a_chosen_view_is_not(client, running_sweep):
    # A sweep starts to vary a param after the page loaded: a fresh load would show it as a
    # column; the open page says so (its rows keep the columns its header has).
    experiment, parent, first = running_sweep
    page = client.get(f"/experiments/{experiment.id}/")
    shown = page.context["state"].column_param
    assert "params.lr" not in shown and "data-columns-default" in page.content.decode()
    before = version_of(client, experiment)
    for number, lr in enumerate(["0.1", "0.01"], start=1):
        child = RunFactory(experiment=experiment, parent=parent, name=f"trial-{number}")
        services.run_log_param(run=child, key="lr", value=lr)
    told = poll(client, experiment, before, columns=shown, columns_default="1").content.decode()
    assert re.search(r"<div data-live-columns>New column for this view: <span class=\"key\">params\.lr</span>", told)
    chosen = poll(client, experiment, before, columns=shown).content.decode()
    assert "data-live-columns" not in chosen
    cache.clear()
    fresh = client.get(f"/experiments/{experiment.id}/").context["state"].column_param
    assert "params.lr" in fresh
    caught_up = poll(client, experiment, before, columns=fresh, columns_default="1").content.decode()
    assert "<div data-live-columns></div>" in caught_up
