"""The compare page in Chromium, from the demo tree: selection, "compare children", the charts
drawn by plotly.js, and redrawing for another metric. Fixtures (browser, page, demo) come from
tests/browser/conftest.py; the page fixture fails a test on any script error."""

import os
import re
import time
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from dashboard.diff_table import TABLE_ROWS
from tests.browser.conftest import ARTIFACTS
from tracker import services
from tracker.models import Experiment, Run
from tracker.services import KeyValue

# Set here too so this module also runs alone; Playwright's sync API keeps an event loop running.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

DOCS = ARTIFACTS.parent / "docs"
pytestmark = pytest.mark.browser


def tree_row(page, run):
    return page.locator(f'tr[data-run-id="{run.run_id}"]')


def plots(page):
    return page.locator(".js-plotly-plot")


def figure_title(page, index: int) -> str:
    """The title of the index-th chart as plotly.js drew it (read from the live graph div)."""
    return page.locator(".js-plotly-plot").nth(index).evaluate("graph => graph.layout.title.text")


def query_of(page) -> dict:
    return {key: values[0] for key, values in parse_qs(urlparse(page.url).query).items()}


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def test_ticked_runs_of_two_parents_open_in_the_compare_page(page, demo):
    experiment = Experiment.objects.get(name="Nested Child Association")
    first, second = (Run.objects.get(name=f"parent_run_test_default_{i}") for i in (0, 1))
    picked = [*Run.objects.filter(parent=first).order_by("start_time")[:2], Run.objects.filter(parent=second).first()]
    page.goto(f"/experiments/{experiment.id}/")
    for parent in (first, second):
        tree_row(page, parent).locator("button[aria-expanded]").click()
    for run in picked:
        page.locator(f'input[type=checkbox][name=run][value="{run.run_id}"]').check()
    compare = page.get_by_role("link", name=re.compile(r"^Compare \("))
    expect(compare).to_have_text("Compare (3)")
    compare.click()

    expect(page).to_have_url(re.compile(r"/compare/\?runs="))
    expect(page.locator("h1")).to_have_text("Compare runs")
    rows = page.locator(".compare-table tbody tr")
    expect(rows).to_have_count(3)
    for run in picked:
        expect(page.locator(f'.compare-table tr[data-run-id="{run.run_id}"]')).to_contain_text(run.parent.name)
    # Parallel coordinates, scatter, bars, history: all four drawn by plotly.js.
    expect(plots(page)).to_have_count(4)
    expect(page.locator(".js-plotly-plot .parcoords")).to_have_count(1)
    expect(page.locator(".js-plotly-plot .scatterlayer .point").first).to_be_visible()
    # Two parents: two scatter traces, with a legend naming them.
    expect(page.locator(".js-plotly-plot").nth(1).locator(".legend .traces")).to_have_count(2)
    expect(page.locator(".compare-table td.best")).to_have_count(3)  # one per metric
    screenshot(page, "compare-selection.png")


def test_compare_children_on_a_challenge_parent_shows_its_25_children(page, demo):
    experiment = Experiment.objects.get(name="Parent Child Association Challenge")
    parent = Run.objects.filter(experiment=experiment, depth=0).order_by("start_time").first()
    page.goto(f"/experiments/{experiment.id}/")
    link = tree_row(page, parent).locator(f'a[href="/compare/?parent={parent.run_id}"]')
    # The link shows when the pointer is over its row (tree colleague's styling).
    tree_row(page, parent).hover()
    expect(link).to_be_visible()
    screenshot(page, "compare-children-link.png")
    link.click()

    expect(page.locator("h1")).to_have_text(f"Children of {parent.name}")
    expect(page.locator(".run-count")).to_have_text("25 runs")
    expect(page.locator(".compare-table tbody tr")).to_have_count(25)
    # Parallel coordinates, scatter, bars, the param importance, history.
    expect(plots(page)).to_have_count(5)
    screenshot(page, "compare-children.png")
    if os.environ.get("RUNTREE_UPDATE_DOCS") == "1":
        page.screenshot(path=DOCS / "compare.png", full_page=False)


def test_the_run_page_compare_children_button_reaches_the_page(page, demo):
    parent = Run.objects.get(name="parent_run_test_params_test_3_2")
    page.goto(f"/runs/{parent.run_id}/")
    page.get_by_role("link", name=re.compile("^Compare children")).click()
    expect(page.locator(".compare-table tbody tr")).to_have_count(5)


def test_switching_the_metric_redraws_the_charts(page, demo):
    parent = Run.objects.filter(experiment__name="Parent Child Association Challenge", depth=0).first()
    page.goto(f"/compare/?parent={parent.run_id}&metric=metric1")
    # Parallel coordinates, scatter, bars, the param importance (the demo's refresh fitted it), history.
    expect(plots(page)).to_have_count(5)
    assert figure_title(page, 2).startswith("metric1 per run")
    page.locator("select[name=metric]").select_option("metric2")

    expect(page).to_have_url(re.compile(r"metric=metric2"))
    expect(plots(page)).to_have_count(5)
    assert figure_title(page, 0).startswith("Params → metric2")
    assert figure_title(page, 2).startswith("metric2 per run")
    colorbar = page.locator(".js-plotly-plot").first.evaluate("graph => graph.data[0].line.colorbar.title.text")
    assert colorbar == "metric2"


def test_differences_only_and_the_axes_stay_in_the_url(page, demo):
    parent = Run.objects.filter(experiment__name="Parent Child Association Challenge", depth=0).first()
    page.goto(f"/compare/?parent={parent.run_id}")
    page.locator("select[name=x]").select_option("params.param2")
    expect(page).to_have_url(re.compile(r"x=params.param2"))
    expect(plots(page)).to_have_count(5)
    assert " vs param2" in figure_title(page, 1)
    page.get_by_label("Differences only").check()
    expect(page).to_have_url(re.compile(r"diff=1"))
    assert query_of(page)["x"] == "params.param2"
    expect(page.get_by_label("Differences only")).to_be_checked()
    export = page.get_by_role("link", name="Export CSV")
    assert "diff=1" in export.get_attribute("href") and "format=csv" in export.get_attribute("href")


def test_an_empty_selection_shows_a_message_not_an_error(browser, live_server, demo):
    # A context of its own: the shared page fixture counts the 400 response as a console error.
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    response = page.goto("/compare/?runs=")
    assert response.status == 400
    expect(page.locator("[role=alert]")).to_contain_text("No runs selected")
    response = page.goto("/compare/?runs=0123456789abcdef0123456789abcdef")
    assert response.status == 404
    expect(page.locator("[role=alert]")).to_contain_text("None of the selected runs exists")
    context.close()


def test_a_thousand_runs_draw_quickly_and_the_page_stays_usable(page, transactional_db):
    from tests.factories import RunFactory, bulk_children
    from tracker.models import LatestMetric, Metric

    parent = RunFactory(name="sweep-of-1000")
    bulk_children(parent, 1000, metric_key="metric1")
    children = list(Run.objects.children_of(parent).values_list("pk", flat=True))
    Metric.objects.bulk_create(
        [
            Metric(run_id=pk, key="loss", value=(pk % 97) / 97 + 1 / (s + 1), timestamp=s, step=s)
            for pk in children
            for s in range(50)
        ],
        batch_size=5000,
    )
    LatestMetric.objects.bulk_create(
        [LatestMetric(run_id=pk, key="loss", value=(pk % 97) / 97 + 0.02, timestamp=49, step=49) for pk in children],
        batch_size=5000,
    )
    started = time.perf_counter()
    page.goto(f"/compare/?parent={parent.run_id}&metric=metric1&history=loss")
    expect(plots(page)).to_have_count(4, timeout=30_000)
    drawn_in = time.perf_counter() - started
    # The table pages (500 runs a page); the charts hold all 1,000.
    expect(page.locator(".compare-table tbody tr")).to_have_count(TABLE_ROWS)
    expect(page.locator(".table-pager")).to_contain_text("Runs 1–500 of 1,000")
    # The history's 1,000 lines come as one trace per parent, not 1,000 SVG paths.
    assert page.locator(".js-plotly-plot").nth(3).evaluate("graph => graph.data.length") == 1
    # Still responsive: another metric's page is one click away and draws again.
    started = time.perf_counter()
    page.locator("select[name=x]").select_option("params.param1")
    expect(page).to_have_url(re.compile(r"x=params.param1"))
    expect(plots(page)).to_have_count(4, timeout=30_000)
    redrawn_in = time.perf_counter() - started
    screenshot(page, "compare-1000.png")
    print(f"1,000 runs: drawn in {drawn_in:.1f} s, redrawn in {redrawn_in:.1f} s")
    assert drawn_in < 20 and redrawn_in < 20


def test_compare_children_does_not_cover_a_long_parent_name(page, transactional_db):
    experiment = services.experiment_create(name="long names")
    parent = services.run_create(experiment=experiment, name="a-very-long-sweep-name-" * 12)
    services.run_create(experiment=experiment, name="trial", tags=[KeyValue("mlflow.parentRunId", parent.run_id)])
    page.goto(f"/experiments/{experiment.id}/")
    row = tree_row(page, parent)
    row.hover()
    link = row.locator(".compare-children")
    expect(link).to_be_visible()
    name, covering = row.locator(".run-link").bounding_box(), link.bounding_box()
    # The name gives way (it ends in an ellipsis, its full text in its tooltip) instead of
    # running on under the link.
    assert name["x"] + name["width"] <= covering["x"]
    screenshot(page, "compare-children-long-name.png")


def sweep_with_loss_histories(experiment_name: str, names: list[str]) -> Run:
    """A parent whose children, named `names`, each log a 5-step `loss`."""
    from tracker.models import LatestMetric, Metric

    experiment = services.experiment_create(name=experiment_name)
    parent = services.run_create(experiment=experiment, name="sweep")
    for number, name in enumerate(names, start=1):
        child = services.run_create(
            experiment=experiment, name=name, tags=[KeyValue("mlflow.parentRunId", parent.run_id)]
        )
        Metric.objects.bulk_create(
            [Metric(run=child, key="loss", value=number / (s + 1), timestamp=s, step=s) for s in range(5)]
        )
        LatestMetric.objects.create(run=child, key="loss", value=number / 5, timestamp=4, step=4)
    return parent


def test_on_a_phone_long_names_keep_their_ends_and_the_history_keeps_its_width(page, transactional_db):
    names = [f"random-forest-grid-search-trial-n_estimators-200-max_depth-{depth}" for depth in range(3, 7)]
    parent = sweep_with_loss_histories("long names on a phone", names)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/compare/?parent={parent.run_id}&metric=loss&history=loss")
    history = page.locator(".chart-history.js-plotly-plot")
    expect(history).to_be_visible(timeout=30_000)
    # No legend beside the lines (the names would take the chart's width): the table names them.
    assert history.evaluate("graph => graph._fullLayout.showlegend") is False
    tails = page.locator(".compare-table tbody th.name .tail")
    expect(tails).to_have_count(4)
    assert sorted(tails.all_text_contents()) == [f"depth-{depth}" for depth in range(3, 7)]
    tails.first.scroll_into_view_if_needed()
    for tail in tails.all():
        box = tail.bounding_box()
        assert box["width"] > 30 and box["x"] + box["width"] <= 390  # drawn whole, on the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "compare-long-names-390.png")
    # On a laptop the legend is back beside the lines.
    page.set_viewport_size({"width": 1400, "height": 900})
    page.reload()
    expect(history).to_be_visible(timeout=30_000)
    assert history.evaluate("graph => graph._fullLayout.showlegend") is True


def test_on_a_phone_short_names_keep_the_history_legend(page, transactional_db):
    parent = sweep_with_loss_histories("short names on a phone", ["lr-0.1", "lr-0.01", "lr-0.001"])
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/compare/?parent={parent.run_id}&metric=loss&history=loss")
    history = page.locator(".chart-history.js-plotly-plot")
    expect(history).to_be_visible(timeout=30_000)
    assert history.evaluate("graph => graph._fullLayout.showlegend") is True
