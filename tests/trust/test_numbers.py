"""Numbers at the edges: infinities in the native API, digit strings of any length, ids and
limits past 64 bits. Each is a clear answer, never a 500."""

import json
import math

import pytest
from django.test import Client

from tests.factories import build_tree
from tracker import services as ingest
from tracker.models import RunSummary
from tracker.services import MetricInput

API = "/api/2.0/mlflow/"
LONG_DIGITS = "9" * 5000  # past Python's int() digit limit (4,300)


@pytest.fixture
def lenient_client():
    return Client(raise_request_exception=False)


@pytest.fixture
def family(experiment):
    parent, child = build_tree([1, 1], experiment=experiment)
    ingest.run_log_batch(
        run=child,
        metrics=[MetricInput("loss", math.inf, 1), MetricInput("gain", -math.inf, 1), MetricInput("nan", math.nan, 1)],
    )
    RunSummary.objects.create(
        run=parent,
        key="loss",
        goal="min",
        best_value=-math.inf,
        best_run=child,
        count=2,
        min_value=-math.inf,
        max_value=math.inf,
        mean_value=math.nan,
        std_value=math.inf,
        computed_at=1,
    )
    return parent, child


@pytest.mark.parametrize("endpoint", ["", "{child}/", "{parent}/children/", "{parent}/subtree/"])
def test_the_native_api_returns_a_run_with_an_infinite_metric_as_mlflow_does(lenient_client, family, endpoint):
    parent, child = family
    response = lenient_client.get("/api/v1/runs/" + endpoint.format(parent=parent.run_id, child=child.run_id))
    assert response.status_code == 200
    body = response.json()
    runs = [body] if "run_id" in body else body["results"]
    metrics = next(run["metrics"] for run in runs if run["run_id"] == child.run_id)
    assert metrics == {"gain": "-Infinity", "loss": "Infinity", "nan": None}


def test_the_native_summary_writes_infinities_as_strings(lenient_client, family):
    parent, child = family
    response = lenient_client.get(f"/api/v1/runs/{parent.run_id}/summary/")
    assert response.status_code == 200
    [summary] = response.json()
    assert summary["best_value"] == "-Infinity"
    assert (summary["min_value"], summary["max_value"], summary["mean_value"], summary["std_value"]) == (
        "-Infinity",
        "Infinity",
        None,
        "Infinity",
    )


@pytest.mark.parametrize(
    "query",
    [
        {"limit": str(2**63)},
        {"limit": LONG_DIGITS},
        {"offset": str(2**63)},
        {"offset": LONG_DIGITS},
        {"experiment_id": str(2**63)},
        {"experiment_id": LONG_DIGITS},
        {"experiment_id": "-" + LONG_DIGITS},
    ],
)
def test_native_numbers_past_64_bits_are_refused_or_capped_never_a_500(lenient_client, experiment, query):
    response = lenient_client.get("/api/v1/runs/", query)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert "limit" in query


def test_the_native_limit_has_a_maximum(client, experiment):
    build_tree([3], experiment=experiment)
    response = client.get("/api/v1/runs/", {"limit": 10**9})
    assert response.status_code == 200
    assert "limit=1000" in (response.json()["next"] or "limit=1000")


def post(client, rpc: str, body):
    return client.post(
        API + rpc, json.dumps(body) if not isinstance(body, str) else body, content_type="application/json"
    )


@pytest.mark.parametrize(
    "rpc, body",
    [
        ("runs/create", {"experiment_id": "0", "start_time": LONG_DIGITS}),
        ("runs/create", {"experiment_id": LONG_DIGITS}),
        ("runs/search", {"experiment_ids": [LONG_DIGITS]}),
        ("runs/search", {"experiment_ids": ["0"], "max_results": LONG_DIGITS}),
        ("runs/search", {"experiment_ids": ["0"], "run_view_type": LONG_DIGITS}),
        ("experiments/search", {"max_results": LONG_DIGITS}),
        ("experiments/search", {"view_type": LONG_DIGITS}),
    ],
)
def test_a_5000_digit_integer_string_is_a_400_in_every_field(lenient_client, default_experiment, rpc, body):
    response = post(lenient_client, rpc, body)
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_a_5000_digit_experiment_id_in_a_query_string_is_a_400(lenient_client, db):
    response = lenient_client.get(API + "experiments/get", {"experiment_id": LONG_DIGITS})
    assert response.status_code == 400


@pytest.mark.parametrize("field", ["timestamp", "step"])
def test_a_5000_digit_metric_field_is_a_400(lenient_client, experiment, field):
    [run] = build_tree([1], experiment=experiment)
    metric = {"key": "m", "value": 1.0, "timestamp": 1, "step": 0, field: LONG_DIGITS}
    response = post(lenient_client, "runs/log-batch", {"run_id": run.run_id, "metrics": [metric]})
    assert response.status_code == 400


def test_get_history_with_max_results_at_the_64_bit_limit_answers(lenient_client, experiment):
    [run] = build_tree([1], experiment=experiment)
    ingest.run_log_batch(run=run, metrics=[MetricInput("loss", 0.5, 1)])
    query = {"run_id": run.run_id, "metric_key": "loss", "max_results": str(2**63 - 1)}
    response = lenient_client.get(API + "metrics/get-history", query)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["metrics"][0]["value"] == 0.5


@pytest.mark.parametrize("start_time", [1_733_000_000_000_000_000, 2**63 - 1, -(2**63), 253_402_300_800_000])
def test_a_run_time_that_is_no_date_is_refused_at_the_api(lenient_client, default_experiment, start_time):
    response = post(lenient_client, "runs/create", {"experiment_id": "0", "start_time": start_time})
    assert response.status_code == 400
    assert "epoch milliseconds" in response.json()["message"]


def test_an_end_time_in_nanoseconds_is_refused_and_nothing_changes(lenient_client, experiment):
    [run] = build_tree([1], experiment=experiment)
    before = (run.status, run.end_time)
    body = {"run_id": run.run_id, "status": "FINISHED", "end_time": 1_733_000_000_000_000_000}
    response = post(lenient_client, "runs/update", body)
    assert response.status_code == 400
    run.refresh_from_db()
    assert (run.status, run.end_time) == before


def test_a_run_time_in_milliseconds_is_fine(lenient_client, default_experiment):
    response = post(lenient_client, "runs/create", {"experiment_id": "0", "start_time": 1_733_000_000_000})
    assert response.status_code == 200
