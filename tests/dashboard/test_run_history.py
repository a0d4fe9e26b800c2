import json
import math
from urllib.parse import urlencode

import pytest
from django.db.models import F
from django.http import QueryDict

from dashboard.charts import HistoryOptions, ZoomRange
from tests.factories import RunFactory
from tracker.models import LatestMetric, Metric, Run
from tracker.selectors import histories

pytestmark = pytest.mark.django_db


def log_history(run, key, values, *, start=0):
    Metric.objects.bulk_create(
        [
            Metric(run=run, key=key, step=start + step, timestamp=1_700_000_000_000 + step, value=value)
            for step, value in enumerate(values)
        ],
        batch_size=5000,
    )
    # The latest value, as the write path keeps it: the compare page lists keys with a history off it.
    last = start + len(values) - 1
    LatestMetric.objects.update_or_create(
        run=run, key=key, defaults={"step": last, "timestamp": 1_700_000_000_000 + last, "value": values[-1]}
    )


@pytest.fixture
def spiky_run():
    run = RunFactory(name="spiky")
    values = [1.0] * 5000
    values[1001] = 50.0
    values[3000] = None  # NaN, as stored
    values[4000] = math.inf
    log_history(run, "loss", values)
    return run


def page_figures(client, run, query=""):
    response = client.get(f"/runs/{run.run_id}/{query}")
    assert response.status_code == 200
    return [chart["figure"] for chart in response.context["charts"].figures]


def test_the_run_page_draws_the_spike_and_marks_nan_and_inf(client, spiky_run):
    (figure,) = page_figures(client, spiky_run)
    line, marks = figure["data"]
    assert len(line["y"]) == 2000 and max(line["y"]) == 50.0
    assert "2,000 of 4,998 points, 2 NaN/inf marked" in figure["layout"]["title"]["text"]
    assert [text.split(": ")[1] for text in marks["text"]] == ["NaN at step 3000", "+inf at step 4000"]


def test_zoom_fetches_the_range_at_full_resolution(client, spiky_run):
    response = client.get(f"/runs/{spiky_run.run_id}/history.json", {"key": "loss", "from": 900, "to": 1100})
    figure = response.json()
    assert figure["data"][0]["x"] == list(range(900, 1101))
    assert "201 points" in figure["layout"]["title"]["text"]
    assert max(figure["data"][0]["y"]) == 50.0


def test_zoom_by_wall_time_filters_on_timestamps(client, spiky_run):
    start = 1_700_000_000_000
    response = client.get(
        f"/runs/{spiky_run.run_id}/history.json", {"key": "loss", "xaxis": "wall", "from": start + 10, "to": start + 19}
    )
    assert response.json()["data"][0]["x"] == [start + step for step in range(10, 20)]


def test_a_history_longer_than_the_load_limit_is_bucketed_in_sql_keeping_extremes(spiky_run, monkeypatch):
    monkeypatch.setattr(histories, "LOAD_LIMIT", 1000)
    stats = histories.history_stats(spiky_run).series
    assert stats["loss"].count == 5000
    series = histories.run_histories(spiky_run, stats, budget=200)["loss"]
    assert series.bucketed and series.total == 5000
    assert len(series.values) < 1000
    assert 50.0 in series.values and math.inf in series.values and None in series.values
    spike_step = series.steps[series.values.index(50.0)]
    assert abs(spike_step - 1001) <= 5000 / 400  # within its bucket


def test_compare_histories_are_bucketed_per_run_past_the_limit(spiky_run, monkeypatch):
    other = RunFactory(name="flat")
    log_history(other, "loss", [2.0] * 300)
    monkeypatch.setattr(histories, "LOAD_LIMIT", 100)
    found = histories.selection_histories(Run.objects.filter(pk__in=[spiky_run.pk, other.pk]), "loss", per_run=100)
    assert found[spiky_run.pk].total == 5000 and 50.0 in found[spiky_run.pk].values
    assert found[other.pk].total == 300 and set(found[other.pk].values) == {2.0}


def test_figures_are_valid_json_for_the_browser(client, spiky_run):
    html = client.get(f"/runs/{spiky_run.run_id}/").content.decode()
    payload = html.split('<script id="figure-0" type="application/json">')[1].split("</script>")[0]
    json.loads(payload)  # no bare NaN or Infinity


def test_the_compare_history_keeps_a_spike_and_says_how_many_points_it_sends(client, spiky_run):
    other = RunFactory(name="flat")
    log_history(other, "loss", [2.0] * 300)
    response = client.get("/compare/history.json", {"runs": f"{spiky_run.run_id},{other.run_id}", "history": "loss"})
    figure = response.json()
    spiky = next(trace for trace in figure["data"] if trace["name"] == "spiky")
    assert len(spiky["x"]) <= 1002 and max(value for value in spiky["y"] if value is not None) == 50.0
    assert "1,300 of 5,298 points" in figure["layout"]["title"]["text"]


def test_a_runs_histories_cost_two_queries_whatever_their_length(client, spiky_run, django_assert_num_queries):
    log_history(spiky_run, "val_loss", [0.5] * 100)
    # Expect 11 queries: the run page's 9 for a root without children (run, params, latest
    # metrics, tags, children count, the live poll's starting version, datasets, logged models,
    # registrations), then the charts' 2: each key's point count and step range, and the points
    # of every key short enough to read whole (a longer one adds its one bucketed query).
    with django_assert_num_queries(11):
        client.get(f"/runs/{spiky_run.run_id}/")


def test_the_compare_history_takes_the_x_axis_and_smoothing_from_the_url(client, spiky_run):
    other = RunFactory(name="flat")
    log_history(other, "loss", [2.0, 0.0] * 50)
    query = {"runs": f"{spiky_run.run_id},{other.run_id}", "history": "loss"}
    page = client.get("/compare/", {**query, "xaxis": "wall", "smooth": "0.9"})
    assert "xaxis=wall" in page.context["history_url"] and "smooth=0.9" in page.context["history_url"]
    figure = client.get(page.context["history_url"]).json()
    assert "layout" in figure, figure
    assert figure["layout"]["xaxis"]["type"] == "date"
    flat = [trace for trace in figure["data"] if trace["name"] == "flat"]
    raw, smooth = flat
    assert raw["opacity"] == 0.25 and raw["showlegend"] is False
    assert raw["x"][0] == 1_700_000_000_000  # wall time: epoch ms on a date axis
    assert max(smooth["y"][10:]) < 1.5 < max(raw["y"])  # the EMA irons out the zig-zag


# --- zooming: one reading of the range for the run page and the compare page -------------------


def test_a_zoom_range_is_read_in_the_unit_of_the_x_axis():
    def read(**query):
        options = HistoryOptions.from_query(QueryDict(urlencode({k: v for k, v in query.items() if k != "to"})))
        return ZoomRange.from_query(QueryDict(urlencode(query)), options)

    assert read(**{"from": "899.6", "to": "1100.2"}) == ZoomRange(899, 1101, "step")  # whole steps, outward
    # Plotly's date axis gives UTC date strings; epoch ms are taken as they are.
    assert read(xaxis="wall", **{"from": "2023-11-14 22:13:20.9", "to": "1700000001100"}) == ZoomRange(
        1_700_000_000_900, 1_700_000_001_100, "timestamp"
    )
    # Relative time: seconds on the axis, ms since each run's start in the filter.
    assert read(xaxis="relative", **{"from": "1.5", "to": "2"}) == ZoomRange(1500, 2000, "elapsed")
    # An unreadable or missing edge leaves that side open rather than failing the chart.
    assert read(**{"from": "nan", "to": "soon"}) == ZoomRange(None, None, "step")
    assert read(xaxis="wall", **{"from": "yesterday"}) == ZoomRange(None, None, "timestamp")


def test_a_zoom_past_64_bits_is_every_point_not_a_database_error(client, spiky_run):
    # Django holds an out-of-range integer lookup to "all" or "none" itself, through the
    # relative-time expression as well as on the columns.
    other = RunFactory(name="flat")
    log_history(other, "loss", [2.0] * 10)
    edges = {"from": "-1e300", "to": "1e300"}
    run_page = client.get(f"/runs/{spiky_run.run_id}/history.json", {"key": "loss", "xaxis": "relative", **edges})
    assert run_page.status_code == 200 and "4,998 points" in run_page.json()["layout"]["title"]["text"]
    compare = client.get(
        "/compare/history.json", {"runs": f"{spiky_run.run_id},{other.run_id}", "history": "loss", **edges}
    )
    assert compare.status_code == 200 and len(compare.json()["data"]) == 2


def test_the_compare_history_zooms_into_a_range_at_full_resolution(client, spiky_run):
    other = RunFactory(name="flat")
    log_history(other, "loss", [2.0] * 5000)
    query = {"runs": f"{spiky_run.run_id},{other.run_id}", "history": "loss"}
    full = client.get("/compare/history.json", query).json()
    spiky = next(trace for trace in full["data"] if trace["name"] == "spiky")
    assert 900 < len(spiky["x"]) <= 1002  # thinned to its share of the chart
    assert sum(900 <= step <= 1100 for step in spiky["x"]) < 100
    assert "zoom in for every point" in full["layout"]["title"]["text"]

    zoomed = client.get("/compare/history.json", {**query, "from": "900", "to": "1100"}).json()
    for trace in zoomed["data"]:
        assert trace["x"] == list(range(900, 1101))  # every step of the range, each run
    spiky = next(trace for trace in zoomed["data"] if trace["name"] == "spiky")
    assert spiky["y"][1001 - 900] == 50.0 and set(spiky["y"]) == {1.0, 50.0}
    assert "402 points" in zoomed["layout"]["title"]["text"]
    assert "zoom in" not in zoomed["layout"]["title"]["text"]  # nothing left out to zoom for


def test_a_relative_time_zoom_reads_each_run_from_its_own_start(client, spiky_run):
    start = 1_700_000_000_000  # log_history's first timestamp; each point 1 ms after the last
    Run.objects.filter(pk=spiky_run.pk).update(start_time=start)
    later = RunFactory(name="later", start_time=start + 500)
    log_history(later, "loss", [2.0] * 1000, start=0)
    Metric.objects.filter(run=later).update(timestamp=F("timestamp") + 500)
    # A run imported without a start time counts from its first point.
    unstarted = RunFactory(name="unstarted", start_time=None, end_time=None)
    log_history(unstarted, "loss", [3.0] * 1000)
    Metric.objects.filter(run=unstarted).update(timestamp=F("timestamp") + 7_000)
    query = {"runs": ",".join(run.run_id for run in (spiky_run, later, unstarted)), "history": "loss"}
    figure = client.get("/compare/history.json", {**query, "xaxis": "relative", "from": "0.01", "to": "0.019"}).json()
    by_name = {trace["name"]: trace for trace in figure["data"]}
    for name in ("spiky", "later", "unstarted"):
        assert by_name[name]["x"] == [ms / 1000 for ms in range(10, 20)], name
    assert by_name["later"]["y"] == [2.0] * 10 and by_name["unstarted"]["y"] == [3.0] * 10


def test_a_run_page_zoom_in_relative_time_reads_from_the_runs_start(client, spiky_run):
    Run.objects.filter(pk=spiky_run.pk).update(start_time=1_700_000_000_000 - 1000)
    response = client.get(
        f"/runs/{spiky_run.run_id}/history.json", {"key": "loss", "xaxis": "relative", "from": "2", "to": "2.01"}
    )
    line = response.json()["data"][0]
    assert line["customdata"] == list(range(1000, 1011))  # the steps logged 2.000 s … 2.010 s in
    assert line["x"][0] == 2.0 and line["y"][1] == 50.0


def test_a_run_page_zoom_in_relative_time_counts_an_unstarted_run_from_its_first_point(client, spiky_run):
    # Imported from a store without start times: the first point is the origin, as on compare.
    Run.objects.filter(pk=spiky_run.pk).update(start_time=None)
    response = client.get(
        f"/runs/{spiky_run.run_id}/history.json", {"key": "loss", "xaxis": "relative", "from": "2", "to": "2.01"}
    )
    line = response.json()["data"][0]
    assert line["customdata"] == list(range(2000, 2011))
    assert line["x"][0] == 2.0
