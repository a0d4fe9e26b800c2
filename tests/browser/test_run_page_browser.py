"""The run page in Chromium: the Models table on a phone keeps every header over its own
column, the latest metrics show whole, and a long params or metrics table filters by key."""

import mlflow
import pytest
from playwright.sync_api import expect

from tests.api.conftest import client_connections_closed_at_the_end, tracking_uri  # noqa: F401
from tests.dashboard.test_run_page_inputs import log_model
from tracker import services
from tracker.selectors.run_page import LONG_TABLE_ROWS
from tracker.services import KeyValue, MetricInput, run_log_batch

# The left edge of each header and of the cell below it, in order.
COLUMN_EDGES = """() => {
    const table = document.querySelector("table.models");
    const left = (cells) => [...cells].map((cell) => Math.round(cell.getBoundingClientRect().left));
    return [left(table.querySelectorAll("thead th")), left(table.querySelector("tbody tr").children)];
}"""


@pytest.fixture
def run_with_model(transactional_db):
    run = services.run_create(experiment=services.experiment_create(name="phone"), name="trained")
    log_model(run, "model")
    return run.run_id


@pytest.mark.parametrize("width", [1400, 390])
def test_the_models_headers_sit_over_their_columns(page, run_with_model, width):
    # The registry's list hid its fourth header on phones through a rule that also matched this
    # table: Role vanished and Step and Files each sat one column left of their values.
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"/runs/{run_with_model}/")

    headers, cells = page.evaluate(COLUMN_EDGES)

    assert page.get_by_role("columnheader", name="Role").is_visible()
    assert headers == cells


# Each cell of the latest metrics whose text runs past its box (cut by an ellipsis).
CLIPPED_METRIC_CELLS = """() => [...document.querySelectorAll("#metrics-table tbody th, #metrics-table tbody td")]
    .filter((cell) => cell.scrollWidth > cell.clientWidth).map((cell) => cell.textContent)"""


@pytest.mark.parametrize("width", [1400, 390])
def test_the_latest_metrics_show_every_key_and_number_whole(page, transactional_db, width):
    # A fixed layout gave key, value and step a third each: on a phone "accuracy_s…" and
    # "precision_s…" (no hover there to read them), and a large value cut on any screen.
    run = services.run_create(experiment=services.experiment_create(name="evaluated"), name="scored")
    metrics = [
        MetricInput("accuracy_score", 0.9733, 1_700_000_000_000, 0),
        MetricInput("precision_score", 0.9738, 1_700_000_000_000, 0),
        MetricInput("validation/mean_absolute_percentage_error_of_the_holdout_set", 123456789.1234, 1, 1_000_000),
        MetricInput("examples_seen", 999_999_999_999, 1_700_000_000_000, 3),
    ]
    run_log_batch(run=run, params=[], metrics=metrics)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"/runs/{run.run_id}/")

    table = page.locator("#metrics-table")
    for text in ("accuracy_score", "precision_score", "123,456,789.1234", "999,999,999,999", "1000000"):
        expect(table).to_contain_text(text)
    assert page.evaluate(CLIPPED_METRIC_CELLS) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.fixture
def run_with_many_keys(transactional_db):
    run = services.run_create(experiment=services.experiment_create(name="wide"), name="configured")
    count = LONG_TABLE_ROWS + 10
    params = [KeyValue(f"optimizer.layer_{i}.lr", str(i)) for i in range(count)]
    metrics = [MetricInput(f"val/class_{i}_f1", i / 100, 1_700_000_000_000, 0) for i in range(count)]
    metrics += [MetricInput("system/cpu_utilization_percentage", 40.0, 1_700_000_000_000, 0)]
    run_log_batch(run=run, params=params, metrics=metrics)
    return run.run_id


@pytest.mark.parametrize("width", [1400, 390])
def test_a_long_params_or_metrics_table_filters_by_key_and_scrolls_in_its_card(page, run_with_many_keys, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"/runs/{run_with_many_keys}/")
    params, metrics = page.locator("#params-table"), page.locator("#metrics-table")
    expect(params.locator("tr:visible")).to_have_count(LONG_TABLE_ROWS + 10)
    # The card scrolls, not the page: the table is taller than the box it sits in.
    box, table = params.evaluate("t => [t.parentElement.clientHeight, t.scrollHeight]")
    assert box < table

    page.get_by_label("Filter params by key").fill("LAYER_1")
    expect(params.locator("tr:visible")).to_have_count(11)  # layer_1, layer_10 ... layer_19
    expect(page.locator(".key-filter output").first).to_have_text(f"11 of {LONG_TABLE_ROWS + 10}")

    filter_metrics = page.get_by_label("Filter metrics by key")
    filter_metrics.fill("class_2")  # class_2, class_20 ... class_29: no system metric
    expect(metrics.locator("tbody tr:visible")).to_have_count(11)
    expect(metrics.get_by_text("System metrics")).to_be_hidden()
    filter_metrics.fill("cpu")  # the system metric, found by its key, under its heading
    expect(metrics.locator("tbody tr:visible")).to_have_count(2)
    expect(metrics.get_by_text("System metrics")).to_be_visible()
    filter_metrics.fill("")
    expect(metrics.locator("tbody tr:visible")).to_have_count(LONG_TABLE_ROWS + 12)


def test_a_typed_filter_still_applies_after_the_live_refresh_brings_new_metrics(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-long-table")
    with mlflow.start_run(run_name="wide") as run:
        mlflow.log_metrics({f"class_{i}_f1": i / 100 for i in range(LONG_TABLE_ROWS + 5)})
        page.goto(f"/runs/{run.info.run_id}/")
        expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
        page.get_by_label("Filter metrics by key").fill("class_1")
        page.locator("h1").click()  # the focus leaves the box, as it does when the viewer reads on
        metrics = page.locator("#metrics-table")
        expect(metrics.locator("tbody tr:visible")).to_have_count(11)  # class_1, class_10 ... class_19

        mlflow.log_metrics({"class_1_recall": 0.5, "loss": 0.3})

        expect(metrics).to_contain_text("class_1_recall", timeout=15_000)
        expect(metrics.locator("tbody tr:visible")).to_have_count(12)  # the new match; not "loss"
        expect(page.get_by_label("Filter metrics by key")).to_have_value("class_1")
