"""A retried metric write stores each point once (issue #21, item 6): the client retries when
the answer is lost after the commit, and `log_model` re-logs the run's metrics for its model.
MLflow's store skips a point identical to a stored one; so does Runtree, on both databases."""

import json
import math

import pytest

from tests.factories import RunFactory
from tracker.models import LatestMetric, Metric

pytestmark = pytest.mark.django_db

API = "/api/2.0/mlflow/"


def post(client, rpc: str, body: dict):
    return client.post(API + rpc, json.dumps(body), content_type="application/json")


def history(client, run, key: str) -> list[dict]:
    response = client.get(API + "metrics/get-history", {"run_id": run.run_id, "metric_key": key})
    assert response.status_code == 200
    return response.json()["metrics"]


@pytest.fixture
def run(experiment):
    return RunFactory(experiment=experiment)


@pytest.mark.parametrize("size", [3, 150], ids=["a small batch", "a batch large enough for the bulk path"])
def test_a_retried_log_batch_stores_each_point_once(client, run, size):
    metrics = [{"key": f"m{i % 7}", "value": i / 3, "timestamp": 1000 + i, "step": i} for i in range(size)]
    metrics.append({"key": "loss", "value": "NaN", "timestamp": 5, "step": 0})
    body = {"run_id": run.run_id, "metrics": metrics}

    for _attempt in range(3):
        assert post(client, "runs/log-batch", body).status_code == 200

    assert Metric.objects.filter(run=run).count() == size + 1
    assert [point["value"] for point in history(client, run, "loss")] == ["NaN"]
    assert len(history(client, run, "m0")) == len(range(0, size, 7))


def test_a_retried_log_metric_stores_its_point_once_and_a_new_value_is_a_new_point(client, run):
    point = {"run_id": run.run_id, "key": "acc", "value": 0.5, "timestamp": 10, "step": 1}
    assert post(client, "runs/log-metric", point).status_code == 200
    assert post(client, "runs/log-metric", point).status_code == 200
    # Another value at the same step and time is another point, as in MLflow.
    assert post(client, "runs/log-metric", {**point, "value": 0.75}).status_code == 200

    assert [(p["value"], p["step"]) for p in history(client, run, "acc")] == [(0.5, 1), (0.75, 1)]
    latest = LatestMetric.objects.get(run=run, key="acc")
    assert (latest.value, latest.step) == (0.75, 1)


def test_the_same_point_twice_in_one_batch_is_stored_once(client, run):
    point = {"key": "loss", "value": 0.25, "timestamp": 7, "step": 2}
    nan = {"key": "loss", "value": "NaN", "timestamp": 8, "step": 2}
    assert (
        post(client, "runs/log-batch", {"run_id": run.run_id, "metrics": [point, point, nan, nan]}).status_code == 200
    )

    values = [p["value"] for p in history(client, run, "loss")]
    assert values[0] == 0.25 and values[1] == "NaN" and len(values) == 2


def test_infinities_are_points_like_any_other(client, run):
    body = {
        "run_id": run.run_id,
        "metrics": [
            {"key": "x", "value": v, "timestamp": i, "step": 0} for i, v in enumerate(["Infinity", "-Infinity"])
        ]
        * 40,
    }
    assert post(client, "runs/log-batch", body).status_code == 200
    assert [p["value"] for p in history(client, run, "x")] == ["Infinity", "-Infinity"]
    assert math.isinf(Metric.objects.filter(run=run).first().value)
