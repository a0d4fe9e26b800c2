"""What a live page's refresh finds in the page it fetches again (static/js/run_live.js swaps
each `data-live-part` for its fresh self): every part is there from the first load, empty when
there is nothing to show yet, so what arrives later has a place to go."""

import pytest
from bs4 import BeautifulSoup

from dashboard.charts import band_figure
from tests.factories import ExperimentFactory, RunFactory
from tracker.models import ParamImportance, RunStatus
from tracker.services import MetricInput, run_log_batch
from tracker.summaries.bands import band_keys, parent_bands

pytestmark = pytest.mark.django_db


def live_parts(html: str) -> dict:
    return {part["data-live-part"]: part for part in BeautifulSoup(html, "html.parser").select("[data-live-part]")}


def test_a_run_page_without_metrics_or_children_has_every_live_part_ready_and_hidden(client):
    run = RunFactory(name="just-started", status=RunStatus.RUNNING, end_time=None)
    parts = live_parts(client.get(f"/runs/{run.run_id}/").content.decode())
    for name in ("charts", "bands", "importance", "compare-children"):
        assert name in parts, name
        assert parts[name].has_attr("hidden"), name
    assert not parts["charts"].select(".chart")


def test_the_parts_fill_in_once_there_is_something_to_show(client, django_capture_on_commit_callbacks):
    parent = RunFactory(name="sweep", status=RunStatus.RUNNING, end_time=None)
    child = RunFactory(experiment=parent.experiment, parent=parent, name="trial")
    with django_capture_on_commit_callbacks(execute=True):  # the parent's summary refreshed
        run_log_batch(run=child, metrics=[MetricInput("loss", 1 / (step + 1), step, step) for step in range(5)])
    child_parts = live_parts(client.get(f"/runs/{child.run_id}/").content.decode())
    assert child_parts["charts"].select(".chart-history") and not child_parts["charts"].has_attr("hidden")
    parent_parts = live_parts(client.get(f"/runs/{parent.run_id}/").content.decode())
    assert parent_parts["bands"].select(".chart-band")
    assert parent_parts["importance"].select("[data-importance-absent=loss]")
    assert parent_parts["compare-children"].get_text() == "Compare children (1)"
    assert not parent_parts["compare-children"].has_attr("hidden")


def test_the_chart_scripts_are_marked_for_a_live_page_to_load_when_its_first_chart_arrives(client):
    run = RunFactory(name="charted")
    run_log_batch(run=run, metrics=[MetricInput("loss", 1 / (step + 1), step, step) for step in range(5)])
    soup = BeautifulSoup(client.get(f"/runs/{run.run_id}/").content.decode(), "html.parser")
    marked = [script["src"] for script in soup.select("script[data-charts]")]
    assert any("plotly" in src for src in marked) and any(src.endswith("run.js") for src in marked)


def test_compare_children_without_metrics_has_its_charts_part_saying_so(client):
    parent = RunFactory(name="sweep", status=RunStatus.RUNNING, end_time=None)
    RunFactory(experiment=parent.experiment, parent=parent, name="trial", status=RunStatus.RUNNING, end_time=None)
    parts = live_parts(client.get("/compare/", {"parent": parent.run_id}).content.decode())
    assert "nothing to chart" in parts["charts"].get_text()
    assert not parts["charts"].select(".chart")


def test_an_empty_experiment_marks_the_box_the_live_tree_takes_away_when_runs_come(client):
    experiment = ExperimentFactory(name="empty")
    soup = BeautifulSoup(client.get(f"/experiments/{experiment.id}/").content.decode(), "html.parser")
    assert "No runs in this experiment yet" in soup.select_one(".js-tree-empty").get_text()
    assert soup.select_one("table[data-live-url]") is not None


@pytest.mark.parametrize(("children", "note"), [(1, "up to 1 child a step"), (2, "up to 2 children a step")])
def test_the_band_chart_counts_its_children_in_words_that_agree(children, note):
    parent = RunFactory(name="sweep")
    for number in range(children):
        child = RunFactory(experiment=parent.experiment, parent=parent, name=f"trial-{number}")
        run_log_batch(run=child, metrics=[MetricInput("loss", 1.0, step, step) for step in range(3)])
    (band,) = parent_bands(parent, band_keys([parent]))
    figure = band_figure("loss", [("sweep", "#1f77b4", band, "")])
    assert note in figure["layout"]["title"]["text"]


def test_a_param_importance_fit_landing_after_the_last_write_changes_the_run_pages_version(client):
    # The worker fits importance after the sweep's last write; a page watching the parent must
    # see the fit arrive, though nothing else changed.
    parent = RunFactory(name="sweep", status=RunStatus.RUNNING, end_time=None)
    live = f"/runs/{parent.run_id}/live/"
    before = client.get(live)["X-Runtree-Version"]
    assert client.get(live, {"since": before}).status_code == 204  # unchanged
    ParamImportance.objects.create(run=parent, key="loss", params=[], children=10, computed_at=1_700_000_000_000)
    after = client.get(live, {"since": before})
    assert after.status_code == 200
    assert after["X-Runtree-Version"] != before
