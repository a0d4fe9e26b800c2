"""Live pages opened before the sweep had anything to show, and watched while it logs (static/js/
run_live.js, live.js, run.js): what arrives later appears, a viewer's zoom stays through the
updates while the chart takes in new data, and the polls finish cleanly. Runs are logged with the
real mlflow client against the live server."""

import time

import mlflow
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from playwright.sync_api import expect

from tests.api.conftest import client_connections_closed_at_the_end, tracking_uri  # noqa: F401

pytestmark = pytest.mark.browser

LIVE = 20_000  # ms: a poll every 2 s, then the page fetched and its charts drawn


def log_history(run_id: str, key: str, steps: range, scale: float = 1.0) -> None:
    """`key` at each of `steps`, in one request."""
    now = int(time.time() * 1000)
    metrics = [Metric(key, scale / (step + 1), now + step, step) for step in steps]
    MlflowClient().log_batch(run_id, metrics=metrics)


def failed_polls(page) -> list[str]:
    """Every poll of a live endpoint the browser reports as failed (net::ERR_ABORTED and such)."""
    failures: list[str] = []
    page.on(
        "requestfailed",
        lambda request: failures.append(f"{request.url}: {request.failure}") if "/live/" in request.url else None,
    )
    return failures


def test_a_childs_page_opened_before_its_first_metric_draws_its_charts_as_they_come(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-first-metric")
    failures = failed_polls(page)
    with mlflow.start_run(run_name="sweep"):
        with mlflow.start_run(run_name="trial-0", nested=True) as child:
            page.goto(f"/runs/{child.info.run_id}/")
            expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
            expect(page.locator("[data-live-part=charts]")).to_be_hidden()
            log_history(child.info.run_id, "val_loss", range(50))
            history = page.locator("[data-live-part=charts] .chart-history.js-plotly-plot")
            expect(history).to_be_visible(timeout=LIVE)
            expect(page.locator("#history-heading")).to_contain_text("Metric history")
            # It goes on taking in points.
            log_history(child.info.run_id, "val_loss", range(50, 60))
            page.wait_for_function("g => g.data[0].x.includes(59)", arg=history.element_handle(), timeout=LIVE)
    # The polls that found a change were read to their (empty) end, not dropped mid-way.
    assert failures == []


def test_compare_children_opened_before_any_metric_draws_its_charts_as_they_come(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-compare-first-metric")
    with mlflow.start_run(run_name="sweep"):
        with mlflow.start_run(run_name="trial-0", nested=True) as first:
            mlflow.log_param("lr", "0.1")
        parent_id = mlflow.active_run().info.run_id
        page.goto(f"/compare/?parent={parent_id}")
        expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
        expect(page.get_by_text("nothing to chart")).to_be_visible()
        log_history(first.info.run_id, "val_loss", range(5))
        with mlflow.start_run(run_name="trial-1", nested=True) as second:
            mlflow.log_param("lr", "0.01")
            log_history(second.info.run_id, "val_loss", range(5), scale=0.5)
        expect(page.locator("[data-live-part=charts] .chart-history.js-plotly-plot")).to_be_visible(timeout=LIVE)
        expect(page.locator("[data-live-part=charts] .js-plotly-plot").first).to_be_visible()
        expect(page.get_by_text("nothing to chart")).to_have_count(0)


def test_a_parents_page_follows_its_sweep_bands_importance_header_pager_and_count(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-parent")
    with mlflow.start_run(run_name="sweep") as parent:
        with mlflow.start_run(run_name="trial-0", nested=True):
            pass
        page.goto(f"/runs/{parent.info.run_id}/")
        expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
        expect(page.locator("[data-live-part=compare-children]")).to_have_text("Compare children (1)")
        for number in range(1, 22):
            with mlflow.start_run(run_name=f"trial-{number}", nested=True) as child:
                mlflow.log_param("lr", str(10**-number))
                log_history(child.info.run_id, "val_loss", range(3), scale=number)
        children = page.locator("[data-live-part=children]")
        expect(page.locator("[data-live-part=compare-children]")).to_have_text("Compare children (22)", timeout=LIVE)
        # The page keeps its size (20 children) and its pager says how many there are now.
        expect(children.locator(".pager")).to_contain_text("1–20 of 22", timeout=LIVE)
        expect(children.locator("tbody tr[data-level='0']")).to_have_count(20)
        # The header gained the metric column the rows now have.
        expect(children.locator("thead")).to_contain_text("val_loss")
        header_cells = children.locator("thead th").count()
        assert children.locator("tbody tr[data-level='0']").first.locator("td").count() == header_cells
        band = page.locator("[data-live-part=bands] .chart-band.js-plotly-plot")
        expect(band).to_be_visible(timeout=LIVE)
        page.wait_for_function(
            "g => g.layout.title.text.includes('up to 21 children a step')", arg=band.element_handle(), timeout=LIVE
        )
        # Enough children for an importance fit: no longer "1 has one" (the fit is the worker's).
        importance = page.locator("[data-live-part=importance]")
        expect(importance).to_contain_text("Celery worker", timeout=LIVE)
        # Charts drawn, later children come in row by row: the newest at the top, 20 still.
        for number in range(22, 24):
            with mlflow.start_run(run_name=f"trial-{number}", nested=True) as newest:
                log_history(newest.info.run_id, "val_loss", range(3), scale=number)
        expect(children.locator(".pager")).to_contain_text("1–20 of 24", timeout=LIVE)
        expect(children.locator(f"tr[data-run-id='{newest.info.run_id}']")).to_have_count(1)
        expect(children.locator("tbody tr[data-level='0']")).to_have_count(20)


def test_a_zoom_on_a_running_runs_chart_stays_while_the_chart_takes_in_new_points(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-zoom")
    with mlflow.start_run(run_name="training") as run:
        log_history(run.info.run_id, "val_loss", range(100))
        page.goto(f"/runs/{run.info.run_id}/")
        history = page.locator(".chart-history.js-plotly-plot")
        expect(history).to_be_visible()
        history.evaluate('g => Plotly.relayout(g, {"xaxis.range": [10, 200]})')
        page.wait_for_function("g => g.dataset.zoomed === '1'", arg=history.element_handle())
        log_history(run.info.run_id, "val_loss", range(100, 121))
        page.wait_for_function("g => g.data[0].x.includes(120)", arg=history.element_handle(), timeout=LIVE)
        # Two more updates: the viewer's range is still there.
        log_history(run.info.run_id, "val_loss", range(121, 131))
        page.wait_for_function("g => g.data[0].x.includes(130)", arg=history.element_handle(), timeout=LIVE)
        assert history.evaluate("g => g.layout.xaxis.range") == [10, 200]
        assert history.evaluate("g => g.data[0].x[0]") >= 10  # the zoomed range, at full resolution


def test_a_zoomed_history_on_compare_children_takes_in_a_new_child(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-compare-zoom")
    with mlflow.start_run(run_name="sweep") as parent:
        for number in range(2):
            with mlflow.start_run(run_name=f"trial-{number}", nested=True) as child:
                log_history(child.info.run_id, "val_loss", range(20), scale=number + 1)
        page.goto(f"/compare/?parent={parent.info.run_id}&history=val_loss")
        expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
        history = page.locator(".chart-history.js-plotly-plot")
        expect(history).to_be_visible()
        history.evaluate('g => Plotly.relayout(g, {"xaxis.range": [2, 12]})')
        page.wait_for_function("g => g.dataset.zoomed === '1'", arg=history.element_handle())
        with mlflow.start_run(run_name="trial-2", nested=True) as late:
            log_history(late.info.run_id, "val_loss", range(20), scale=0.1)
        page.wait_for_function(
            "g => g.data.filter(trace => trace.showlegend !== false).length === 3",
            arg=history.element_handle(),
            timeout=LIVE,
        )
        assert history.evaluate("g => g.layout.xaxis.range") == [2, 12]


def test_an_empty_experiments_tree_waits_for_its_first_runs(page, tracking_uri):  # noqa: F811
    experiment_id = MlflowClient().create_experiment("live-empty")
    page.goto(f"/experiments/{experiment_id}/")
    expect(page.locator(".js-live-text")).to_have_text("Live: waiting for runs")
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_metric("val_loss", 0.5)
        expect(page.locator(f'tr[data-run-id="{run.info.run_id}"]')).to_be_visible(timeout=LIVE)
        expect(page.get_by_text("No runs in this experiment yet")).to_have_count(0)
        expect(page.locator(".js-live")).to_have_attribute("data-state", "on")


def test_a_tree_on_its_default_columns_says_when_a_sweep_starts_to_vary_a_param(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-new-columns")
    with mlflow.start_run(run_name="sweep") as parent:
        with mlflow.start_run(run_name="trial-0", nested=True):
            mlflow.log_param("lr", "0.1")
        page.goto(f"/experiments/{parent.info.experiment_id}/")
        expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
        expect(page.locator("table.tree thead")).not_to_contain_text("lr")
        with mlflow.start_run(run_name="trial-1", nested=True):
            mlflow.log_param("lr", "0.01")  # now it varies: a default column
        notice = page.locator(".js-columns-notice")
        expect(notice).to_be_visible(timeout=LIVE)
        expect(notice).to_contain_text("params.lr")
        page.screenshot(path="/tmp/columns-notice.png")
        notice.get_by_role("link").click()
        expect(page.locator("table.tree thead")).to_contain_text("lr")
        expect(notice).to_be_hidden()


def test_compare_children_opened_before_the_first_child_shows_it_when_it_comes(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-compare-empty")
    with mlflow.start_run(run_name="sweep") as parent:
        page.goto(f"/compare/?parent={parent.info.run_id}")
        expect(page.locator(".empty")).to_contain_text("has no child runs to compare")
        expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
        with mlflow.start_run(run_name="first-trial", nested=True) as child:
            log_history(child.info.run_id, "val_loss", range(3))
        expect(page.locator("[data-live-part=table]")).to_contain_text("first-trial", timeout=LIVE)
        expect(page.locator(".empty")).to_have_count(0)
