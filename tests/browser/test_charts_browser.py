"""Charts in Chromium: a spike survives on a long run's page, a zoom fetches full resolution
(on the run page and on the compare page), a parent's page draws a filled band, compare
children draws the param importance, and compare sweeps draws a band per parent. Fixtures
(browser, page) come from tests/browser/conftest.py; the page fixture fails a test on any
script error."""

import os
import re

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from dashboard.run_charts import INLINE_CHARTS
from tests.browser.conftest import ARTIFACTS
from tests.factories import ExperimentFactory, RunFactory
from tracker.models import LatestMetric, Metric, Param
from tracker.summaries.importance import refresh_importance

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = pytest.mark.browser


def graph_data(page, selector: str, script: str):
    """Evaluate `script` on the plotly graph div inside `selector` once plotly.js has drawn it."""
    graph = page.locator(f"{selector}.js-plotly-plot").first
    expect(graph).to_be_visible()
    return graph.evaluate(script)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


@pytest.fixture
def spiky_run(transactional_db):
    run = RunFactory(name="spiky", experiment=ExperimentFactory(name="long"))
    values = [50.0 if step == 1001 else 1.0 for step in range(5000)]
    values[3000] = None  # a NaN step
    Metric.objects.bulk_create(
        [
            Metric(run=run, key="loss", step=step, timestamp=1_700_000_000_000 + step, value=v)
            for step, v in enumerate(values)
        ]
    )
    return run


def sweep(experiment, name: str, children: int, offset: float, seed: int):
    """A parent whose children log `loss` for 40 steps (offset by the parent) and a log-uniform lr."""
    parent = RunFactory(experiment=experiment, name=name)
    generator = np.random.default_rng(seed)
    for number in range(children):
        child = RunFactory(parent=parent, name=f"{name}-{number}")
        lr = 10 ** generator.uniform(-5, -1)
        Param.objects.bulk_create(
            [Param(run=child, key="lr", value=repr(lr)), Param(run=child, key="seed", value=str(number))]
        )
        curve = offset + np.exp(-np.arange(40) / 10) + generator.normal(0, 0.05, 40) + np.log10(lr) ** 2 / 50
        Metric.objects.bulk_create(
            [Metric(run=child, key="loss", step=step, timestamp=step, value=float(v)) for step, v in enumerate(curve)]
        )
        LatestMetric.objects.create(run=child, key="loss", step=39, timestamp=39, value=float(curve[-1]))
    return parent


def test_the_run_page_of_a_5000_step_run_draws_its_spike(page, spiky_run):
    page.goto(f"/runs/{spiky_run.run_id}/")
    drawn = graph_data(
        page,
        ".chart-history",
        "g => ({max: Math.max(...g.data[0].y), n: g.data[0].y.length, title: g.layout.title.text})",
    )
    assert drawn["max"] == 50.0 and drawn["n"] == 2000
    assert "2,000 of 4,999 points" in drawn["title"]
    marks = graph_data(page, ".chart-history", "g => g.data[1].text")
    assert marks == ["loss: NaN at step 3000"]
    # A large chart: the history card's whole width, 360 px high, its y axis titled.
    card = page.locator("section.charts").first.bounding_box()
    chart = page.locator(".chart-history.js-plotly-plot").first.bounding_box()
    assert chart["width"] > 0.9 * card["width"] and chart["height"] >= 360
    assert graph_data(page, ".chart-history", "g => g.layout.yaxis.title.text") == "loss"
    screenshot(page, "charts-spike.png")


def test_zoom_fetches_the_range_at_full_resolution(page, spiky_run):
    page.goto(f"/runs/{spiky_run.run_id}/")
    graph_data(page, ".chart-history", "g => g.data.length")
    with page.expect_response(lambda response: "/history.json" in response.url and "from=900" in response.url):
        page.locator(".chart-history.js-plotly-plot").first.evaluate(
            'g => Plotly.relayout(g, {"xaxis.range": [900, 1100]})'
        )
    page.wait_for_function("() => document.querySelector('.chart-history').dataset.zoomed === '1'")
    zoomed = graph_data(page, ".chart-history", "g => ({x: g.data[0].x, title: g.layout.title.text})")
    assert zoomed["x"] == list(range(900, 1101))  # every step of the range
    assert "201 points" in zoomed["title"]


def test_a_parents_page_draws_a_filled_band(page, transactional_db):
    parent = sweep(ExperimentFactory(name="bands"), "sweep-a", 6, 0.0, seed=1)
    page.goto(f"/runs/{parent.run_id}/")
    fill = graph_data(page, ".chart-band", "g => g.data[1].fill")
    assert fill == "tonexty"
    expect(page.locator(".chart-band path.js-fill").first).to_be_attached()
    screenshot(page, "charts-band.png")


def test_compare_children_shows_the_param_importance(page, transactional_db):
    parent = sweep(ExperimentFactory(name="importance"), "sweep-i", 14, 0.0, seed=2)
    refresh_importance(parent_pk=parent.pk)
    page.goto(f"/compare/?parent={parent.run_id}&metric=loss")
    bars = graph_data(page, ".chart-importance", "g => g.data[0].y")
    assert bars[-1] == "lr (log)"  # most important on top
    expect(page.locator(".chart-importance g.point")).to_have_count(2)
    screenshot(page, "charts-importance.png")


def test_compare_sweeps_with_two_parents_draws_two_bands(page, transactional_db):
    experiment = ExperimentFactory(name="sweeps")
    first, second = sweep(experiment, "sweep-1", 5, 0.0, seed=3), sweep(experiment, "sweep-2", 5, 1.0, seed=4)
    page.goto(f"/compare/?parents={first.run_id},{second.run_id}&history=loss")
    band_chart = page.locator(".js-plotly-plot", has=page.locator("path.js-fill")).first
    expect(band_chart).to_be_visible()
    expect(band_chart.locator("path.js-fill")).to_have_count(2)
    names = band_chart.evaluate("g => g.data.filter(t => t.customdata).map(t => t.name)")
    assert names == ["sweep-1", "sweep-2"]
    screenshot(page, "charts-sweeps.png")


def test_zoom_on_a_wall_time_axis_fetches_that_time_range(page, spiky_run):
    page.goto(f"/runs/{spiky_run.run_id}/?xaxis=wall")
    graph_data(page, ".chart-history", "g => g.data.length")
    graph = page.locator(".chart-history.js-plotly-plot").first
    with page.expect_response(lambda response: "/history.json" in response.url and "xaxis=wall" in response.url):
        # Steps are 1 ms apart from 1_700_000_000_000 (spiky_run): 900 ms to 1,100 ms in.
        graph.evaluate('g => Plotly.relayout(g, {"xaxis.range": ["2023-11-14 22:13:20.9", "2023-11-14 22:13:21.1"]})')
    page.wait_for_function("() => document.querySelector('.chart-history').dataset.zoomed === '1'")
    x = graph_data(page, ".chart-history", "g => g.data[0].x")
    assert x[0] == 1_700_000_000_900 and x[-1] == 1_700_000_001_100 and len(x) == 201


def test_a_zoom_on_the_compare_pages_history_fetches_every_point_of_the_range(page, spiky_run):
    LatestMetric.objects.create(run=spiky_run, key="loss", step=4999, timestamp=1_700_000_004_999, value=1.0)
    flat = RunFactory(name="flat", experiment=spiky_run.experiment)
    Metric.objects.bulk_create(
        [Metric(run=flat, key="loss", step=step, timestamp=1_700_000_000_000 + step, value=2.0) for step in range(5000)]
    )
    LatestMetric.objects.create(run=flat, key="loss", step=4999, timestamp=1_700_000_004_999, value=2.0)
    page.goto(f"/compare/?runs={spiky_run.run_id},{flat.run_id}&history=loss")
    history = ".chart-history.js-plotly-plot"
    expect(page.locator(history)).to_be_visible()
    full = page.locator(history).evaluate("g => g.data.map(t => t.x.filter(x => x >= 900 && x <= 1100).length)")
    assert all(count < 100 for count in full)  # thinned to each run's share of the chart
    with page.expect_response(lambda response: "/compare/history.json" in response.url and "from=900" in response.url):
        page.locator(history).evaluate('g => Plotly.relayout(g, {"xaxis.range": [900, 1100]})')
    page.wait_for_function("() => document.querySelector('.chart-history').dataset.zoomed === '1'")
    zoomed = page.locator(history).evaluate("g => g.data.map(t => ({name: t.name, x: t.x, y: t.y}))")
    assert [line["x"] for line in zoomed] == [list(range(900, 1101))] * 2
    spiky = next(line for line in zoomed if line["name"] == "spiky")
    assert spiky["y"][1001 - 900] == 50.0
    assert "402 points" in page.locator(history).evaluate("g => g.layout.title.text")
    screenshot(page, "charts-compare-zoom.png")
    # A double-click (autorange) brings the whole thinned history back.
    with page.expect_response(lambda response: "/compare/history.json" in response.url and "from=" not in response.url):
        page.locator(history).evaluate('g => Plotly.relayout(g, {"xaxis.autorange": true})')
    page.wait_for_function("() => document.querySelector('.chart-history').dataset.zoomed === ''")


def test_a_click_on_a_sweeps_band_opens_its_children_drawing_the_bands_metric(page, transactional_db):
    experiment = ExperimentFactory(name="sweeps")
    first, second = sweep(experiment, "sweep-1", 5, 0.0, seed=3), sweep(experiment, "sweep-2", 5, 1.0, seed=4)
    page.goto(f"/compare/?parents={first.run_id},{second.run_id}&history=loss")
    band_chart = page.locator(".js-plotly-plot", has=page.locator("path.js-fill")).first
    expect(band_chart.locator("path.js-fill")).to_have_count(2)
    # Every chart drawn before the pointer moves: the parallel coordinates come last, in software
    # WebGL. In CI (two suites on two cores) this click once failed to navigate, maybe while they
    # were still being drawn; 24 runs here under load did not repeat it.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.chart')].every(c => c.classList.contains('js-plotly-plot'))"
    )
    # A point inside sweep-2's fill, between its centre line and its upper edge, at step 20.
    x, y = band_chart.evaluate(
        """g => {
            const [upper, centre] = g.data.filter(t => t.name && t.name.startsWith("sweep-2")
                && (t.fill || t.customdata)).map(t => t.y[20]);
            const size = g._fullLayout._size, box = g.getBoundingClientRect();
            return [box.left + size.l + g._fullLayout.xaxis.l2p(20),
                    box.top + size.t + g._fullLayout.yaxis.l2p((upper + 2 * centre) / 3)];
        }"""
    )
    children = f"/compare/?parent={second.run_id}&metric=loss&history=loss"
    # In CI (two suites on two cores) a click that followed the hover has twice not navigated
    # (2026-12-04 at 6887bc5; once before); 8 runs here beside two busy loops did not repeat it.
    # A viewer whose click did nothing clicks again: so does this test, once, and a band that
    # never opens its children still fails it.
    for attempt in range(2):
        page.mouse.move(x, y)
        expect(band_chart.locator(".hovertext").first).to_contain_text("sweep-2")
        page.mouse.click(x, y)
        try:
            page.wait_for_url(f"**{children}", timeout=10_000)
            break
        except PlaywrightTimeoutError:
            if attempt == 1:
                raise
    # The URL changes once the children's page has answered: a navigation's time, not a check's.
    expect(page).to_have_url(children, timeout=30_000)
    expect(page.locator("h1")).to_have_text("Children of sweep-2")
    # The history of the band's metric, one line per child of that parent only.
    history = page.locator(".chart-history.js-plotly-plot")
    expect(history).to_be_visible()
    names = history.evaluate("g => g.data.map(t => t.name)")
    assert sorted(names) == [f"sweep-2-{number}" for number in range(5)]
    screenshot(page, "charts-band-click.png")


def test_compare_children_of_25_draws_every_chart_full_width_and_names_each_line(page, transactional_db):
    parent = sweep(ExperimentFactory(name="wide"), "sweep-w", 25, 0.0, seed=5)
    page.goto(f"/compare/?parent={parent.run_id}&metric=loss&history=loss")
    expect(page.locator(".chart-history.js-plotly-plot")).to_be_visible()
    section = page.locator(".compare-charts").bounding_box()
    charts = page.locator(".compare-charts .chart-card")
    for index in range(charts.count()):
        box = charts.nth(index).bounding_box()
        assert box["width"] == pytest.approx(section["width"], abs=1), index  # none shares a row
    # The history's legend names each of the 25 lines.
    expect(page.locator(".chart-history .legend .traces")).to_have_count(25)
    # The scatter labels its points, the bars their runs: by name, in the run's colour.
    expect(page.locator(".js-plotly-plot .scatterlayer .textpoint").first).to_be_visible()
    screenshot(page, "charts-25-children.png")


def test_charts_past_the_first_dozen_are_drawn_as_they_scroll_into_view(page, transactional_db):
    run = RunFactory(name="per-layer", experiment=ExperimentFactory(name="wide"))
    keys = [f"layer_{i:02d}/grad_norm" for i in range(INLINE_CHARTS + 8)]
    Metric.objects.bulk_create(
        [
            Metric(run=run, key=key, step=step, timestamp=step, value=k + step)
            for k, key in enumerate(keys)
            for step in range(10)
        ]
    )
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"/runs/{run.run_id}/")
    inline = page.locator(".chart-history[data-figure]")
    expect(inline.nth(INLINE_CHARTS - 1)).to_have_class(re.compile("js-plotly-plot"))
    last = page.locator(".chart-history[data-when-seen]").last
    expect(last).not_to_have_class(re.compile("js-plotly-plot"))  # far below: not fetched yet

    last.scroll_into_view_if_needed()

    expect(last).to_have_class(re.compile("js-plotly-plot"))
    drawn = last.evaluate("g => ({title: g.layout.title.text, y: g.data[0].y})")
    assert drawn["title"].startswith(keys[-1]) and drawn["y"] == [len(keys) - 1 + step for step in range(10)]


def test_on_a_touch_phone_no_toolbar_covers_a_charts_title(browser, live_server, spiky_run):
    # plotly keeps its toolbar shown on a touch screen (no hover to bring it up), over the title.
    phone = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = phone.new_page()
    page.goto(f"/runs/{spiky_run.run_id}/")
    assert "points" in graph_data(page, ".chart-history", "g => g.layout.title.text")
    expect(page.locator(".chart-history .modebar")).to_have_count(0)
    phone.close()

    page = browser.new_page(base_url=live_server.url)  # a mouse: the toolbar comes with the hover
    page.goto(f"/runs/{spiky_run.run_id}/")
    graph_data(page, ".chart-history", "g => g.data.length")
    page.locator(".chart-history").first.hover()
    expect(page.locator(".chart-history .modebar").first).to_be_visible()
    page.close()
