"""Metric histories at the edges of 64 bits: steps that are nanosecond clocks or span every step
MLflow accepts (any int64), a timestamp near -2^63. The charts draw them as any other history,
bucketed in SQL past LOAD_LIMIT points, never a 500 from the database's integer arithmetic."""

import pytest
from django.test import Client

from dashboard.downsample import RUN_PAGE_BUDGET
from tests.factories import RunFactory, insert_rows
from tracker.models import Metric, Run
from tracker.selectors import histories

pytestmark = pytest.mark.django_db

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
START = 1_700_000_000_000  # epoch ms
NANOSECONDS_NOW = 1_700_000_000_000_000_000  # time.time_ns() around START
POINTS = histories.LOAD_LIMIT + 1  # one past what is read as it is
SPIKE = 50.0


@pytest.fixture
def lenient_client():
    return Client(raise_request_exception=False)


def log_points(run: Run, steps: list[int], values: list[float], timestamps: list[int] | None = None) -> None:
    timestamps = timestamps or [START + index for index in range(len(steps))]
    points = zip(steps, timestamps, values, strict=True)
    rows = [(run.pk, "loss", step, timestamp, value) for step, timestamp, value in points]
    insert_rows(Metric, ["run", "key", "step", "timestamp", "value"], rows)


def nanosecond_steps() -> list[int]:
    """A first point at step 0, then a step of time.time_ns() a millisecond apart."""
    return [0, *(NANOSECONDS_NOW + index * 1_000_000 for index in range(POINTS - 1))]


def int64_steps() -> list[int]:
    """From -2^63 to 2^63-1 in equal strides."""
    stride = (INT64_MAX - INT64_MIN) // (POINTS - 1)
    return [INT64_MIN + index * stride for index in range(POINTS - 1)] + [INT64_MAX]


@pytest.fixture(params=[nanosecond_steps, int64_steps], ids=["nanosecond-steps", "int64-steps"])
def wide_run(request):
    """A falling loss (so a bucket's minimum and maximum differ) with a spike in the middle."""
    run = RunFactory(name="wide")
    values = [1 / (1 + index) for index in range(POINTS)]
    values[POINTS // 2] = SPIKE
    log_points(run, request.param(), values)
    return run


def assert_sensible(line: dict, steps: list[int]) -> None:
    """Drawn in step order from the first step to the last, the spike kept, within the budget."""
    x = line["customdata"] if "customdata" in line else line["x"]
    assert x == sorted(x)
    assert x[0] == steps[0] and x[-1] == steps[-1]
    assert SPIKE in line["y"]
    assert 3 <= len(x) <= RUN_PAGE_BUDGET


def logged_steps(run: Run) -> list[int]:
    return list(Metric.objects.filter(run=run).order_by("step").values_list("step", flat=True))


def test_the_run_page_draws_a_history_of_wide_steps(lenient_client, wide_run):
    response = lenient_client.get(f"/runs/{wide_run.run_id}/")
    assert response.status_code == 200, response.content[-2000:]
    [chart] = response.context["charts"].figures
    assert_sensible(chart["figure"]["data"][0], logged_steps(wide_run))
    assert f"of {POINTS:,} points" in chart["figure"]["layout"]["title"]["text"]


def test_the_run_pages_history_json_draws_a_history_of_wide_steps(lenient_client, wide_run):
    response = lenient_client.get(f"/runs/{wide_run.run_id}/history.json", {"key": "loss"})
    assert response.status_code == 200, response.content[-2000:]
    figure = response.json()
    assert_sensible(figure["data"][0], logged_steps(wide_run))
    assert f"of {POINTS:,} points" in figure["layout"]["title"]["text"]


def test_the_compare_history_json_draws_a_history_of_wide_steps_beside_an_ordinary_one(
    lenient_client, wide_run, monkeypatch
):
    ordinary = RunFactory(name="ordinary")
    log_points(ordinary, list(range(2000)), [1 / (1 + step) for step in range(2000)])
    monkeypatch.setattr(histories, "LOAD_LIMIT", POINTS // 4 - 1)  # bucketed here too, in one query
    query = {"runs": f"{wide_run.run_id},{ordinary.run_id}", "history": "loss"}
    response = lenient_client.get("/compare/history.json", query)
    assert response.status_code == 200, response.content[-2000:]
    lines = {trace["name"]: trace for trace in response.json()["data"]}
    for run in (wide_run, ordinary):
        steps = logged_steps(run)
        x = lines[run.name]["x"]
        assert x == sorted(x) and x[0] == steps[0] and x[-1] == steps[-1]
    assert SPIKE in lines["wide"]["y"]


def test_wide_steps_are_cut_into_at_most_the_buckets_asked_for(wide_run, monkeypatch):
    """Each bucket sends its minimum and maximum: no more rows than two a bucket, whichever way
    the step range is known (from the key's stats, or read in the query), the first and last
    step among them."""
    steps = logged_steps(wide_run)
    budget = 100
    buckets = budget * histories.BUCKETS_PER_POINT
    stats = histories.history_stats(wide_run).series
    from_stats = histories.run_histories(wide_run, stats, budget=budget)["loss"]
    from_query = histories.history_range(wide_run, "loss", budget=budget)
    monkeypatch.setattr(histories, "LOAD_LIMIT", 1000)
    per_run = histories.selection_histories(Run.objects.filter(pk=wide_run.pk), "loss", per_run=buckets * 2)
    for series in (from_stats, from_query, per_run[wide_run.pk]):
        assert series.bucketed and series.total == POINTS
        assert 3 <= len(series.steps) <= 2 * buckets
        assert series.steps == sorted(series.steps)
        assert series.steps[0] == steps[0] and series.steps[-1] == steps[-1]
        assert SPIKE in series.values


# --- a timestamp near -2^63, in relative time (ms since the run's start) ---------------------------


@pytest.fixture
def runs_with_an_ancient_point():
    """Two runs of 100 points 100 ms apart and one point stamped near -2^63: one run started at
    its first ordinary point, the other without a start time (its time counts from its earliest
    point, the ancient one)."""
    runs = []
    for name, start_time in (("started", START), ("unstarted", None)):
        run = RunFactory(name=name, start_time=start_time, end_time=None)
        timestamps = [START + index * 100 for index in range(100)] + [INT64_MIN + 1]
        log_points(run, list(range(101)), [1.0] * 100 + [2.0], timestamps)
        runs.append(run)
    return runs


RELATIVE_ZOOM = {"xaxis": "relative", "from": "0", "to": "10"}


def test_a_relative_zoom_on_the_run_page_reads_past_an_ancient_timestamp(lenient_client, runs_with_an_ancient_point):
    started, unstarted = runs_with_an_ancient_point
    response = lenient_client.get(f"/runs/{started.run_id}/history.json", {"key": "loss", **RELATIVE_ZOOM})
    assert response.status_code == 200, response.content[-2000:]
    line = response.json()["data"][0]
    assert line["customdata"] == list(range(100)) and line["x"] == [index / 10 for index in range(100)]

    response = lenient_client.get(f"/runs/{unstarted.run_id}/history.json", {"key": "loss", **RELATIVE_ZOOM})
    assert response.status_code == 200, response.content[-2000:]
    line = response.json()["data"][0]
    assert line["customdata"] == [100] and line["x"] == [0.0]  # the ancient point is its start


def test_a_relative_zoom_on_compare_reads_past_an_ancient_timestamp(lenient_client, runs_with_an_ancient_point):
    query = {"runs": ",".join(run.run_id for run in runs_with_an_ancient_point), "history": "loss", **RELATIVE_ZOOM}
    response = lenient_client.get("/compare/history.json", query)
    assert response.status_code == 200, response.content[-2000:]
    by_name = {trace["name"]: trace for trace in response.json()["data"]}
    assert by_name["started"]["x"] == [index / 10 for index in range(100)]
    assert by_name["unstarted"]["x"] == [0.0] and by_name["unstarted"]["y"] == [2.0]
