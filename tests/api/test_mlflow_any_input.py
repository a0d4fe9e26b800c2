"""Whatever a client sends, the MLflow API answers in MLflow's JSON and never with a 500.

Bodies are drawn near a valid request for each endpoint, with one or two fields (at any depth)
replaced by any JSON value, so the checks behind the first one get exercised too.
"""

import functools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracker import services
from tracker.api.mlflow.json import page_token
from tracker.api.mlflow.urls import urlpatterns
from tracker.services import logged_models

pytestmark = pytest.mark.django_db

API = "/api/2.0/mlflow/"
RUN, EXPERIMENT, MODEL = "<known run id>", "<known experiment id>", "<known model id>"
TAGS = [{"key": "team", "value": "vision"}]
VALID = {
    "experiments/create": {"name": "new", "artifact_location": "s3://bucket", "tags": TAGS},
    "experiments/get": {"experiment_id": EXPERIMENT},
    "experiments/get-by-name": {"experiment_name": "known"},
    "experiments/search": {
        "filter": "name = 'known'",
        "order_by": ["name DESC"],
        "max_results": 5,
        "page_token": page_token(1),
        "view_type": "ALL",
    },
    "experiments/update": {"experiment_id": EXPERIMENT, "new_name": "renamed"},
    "experiments/delete": {"experiment_id": EXPERIMENT},
    "experiments/restore": {"experiment_id": EXPERIMENT},
    "experiments/set-experiment-tag": {"experiment_id": EXPERIMENT, "key": "team", "value": "vision"},
    "experiments/delete-experiment-tag": {"experiment_id": EXPERIMENT, "key": "team"},
    "runs/create": {
        "experiment_id": EXPERIMENT,
        "user_id": "me",
        "run_name": "trial",
        "start_time": 1,
        "tags": [{"key": "mlflow.parentRunId", "value": RUN}],
    },
    "runs/get": {"run_id": RUN},
    "runs/update": {"run_id": RUN, "status": "FINISHED", "end_time": 5, "run_name": "renamed"},
    "runs/delete": {"run_id": RUN},
    "runs/restore": {"run_id": RUN},
    "runs/search": {
        "experiment_ids": [EXPERIMENT],
        "filter": "metrics.loss < 1",
        "run_view_type": "ALL",
        "max_results": 5,
        "order_by": ["metrics.loss DESC"],
        "page_token": page_token(1),
    },
    "runs/log-batch": {
        "run_id": RUN,
        "metrics": [{"key": "loss", "value": 0.5, "timestamp": 1, "step": 2}],
        "params": [{"key": "lr", "value": "0.1"}],
        "tags": TAGS,
    },
    "runs/log-metric": {"run_id": RUN, "key": "loss", "value": 0.5, "timestamp": 1, "step": 2},
    "runs/log-parameter": {"run_id": RUN, "key": "lr", "value": "0.1"},
    "runs/set-tag": {"run_id": RUN, "key": "team", "value": "vision"},
    "runs/delete-tag": {"run_id": RUN, "key": "team"},
    "metrics/get-history": {"run_id": RUN, "metric_key": "loss", "max_results": 2, "page_token": page_token(1)},
    "runs/log-inputs": {
        "run_id": RUN,
        "datasets": [
            {
                "tags": [{"key": "mlflow.data.context", "value": "training"}],
                "dataset": {"name": "d", "digest": "abc", "source_type": "local", "source": "{}", "schema": "{}"},
            }
        ],
        "models": [{"model_id": MODEL}],
    },
    "runs/outputs": {"run_id": RUN, "models": [{"model_id": MODEL, "step": 1}]},
    "logged-models": {
        "experiment_id": EXPERIMENT,
        "name": "m",
        "model_type": "t",
        "source_run_id": RUN,
        "params": [{"key": "a", "value": "1"}],
        "tags": TAGS,
    },
    "logged-models/search": {
        "experiment_ids": [EXPERIMENT],
        "filter": "name = 'm' AND metrics.acc > 0.5",
        "datasets": [{"dataset_name": "d", "dataset_digest": "abc"}],
        "max_results": 5,
        "order_by": [{"field_name": "metrics.acc", "ascending": False, "dataset_name": "d"}],
        "page_token": page_token(1),
    },
    "logged-models/<str:model_id>": {"model_id": MODEL, "allow_deleted": "true"},
    "logged-models/<str:model_id>/params": {"model_id": MODEL, "params": [{"key": "b", "value": "2"}]},
    "logged-models/<str:model_id>/tags": {"model_id": MODEL, "tags": TAGS},
    "logged-models/<str:model_id>/artifacts/directories": {"model_id": MODEL, "artifact_directory_path": "a"},
    "logged-models/<str:model_id>/tags/<path:tag_key>": {"model_id": MODEL},
    "artifacts/list": {"run_id": RUN, "path": "plots"},
}
METHODS = {str(p.pattern): p.callback.http_methods[0] for p in urlpatterns if hasattr(p.callback, "http_methods")}

# Every character, lone surrogates and NUL included; integers past 64 bits and past a float.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
# Values that have broken parsers before; random JSON reaches them too rarely.
EDGE_VALUES = [
    *(None, True, 0, -1, 1.5, 2**63, -(2**63) - 1, 10**309, -(10**400)),
    *(float("nan"), float("inf"), "", "NaN", "-1", "1e999", "\x00", "a\ud800", "x" * 300),
    *([], {}, [1], ["x"], {"key": 1}, [{"key": None}]),
]
any_json = st.sampled_from(EDGE_VALUES) | json_values


def paths(value, prefix=()):
    """Every place in a body: each field and each list item, at any depth."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def replaced(value, path, new):
    if not path:
        return new
    key, rest = path[0], path[1:]
    if isinstance(value, dict) and key in value:
        return {**value, key: replaced(value[key], rest, new)}
    if isinstance(value, list) and isinstance(key, int) and key < len(value):
        return [*value[:key], replaced(value[key], rest, new), *value[key + 1 :]]
    return value  # an earlier change replaced what held this place


def near(valid):
    """Bodies like `valid` with one or two of its fields replaced by any JSON value."""
    changes = st.lists(st.tuples(st.sampled_from(paths(valid)), any_json), min_size=1, max_size=2)
    return changes.map(lambda pairs: functools.reduce(lambda body, pair: replaced(body, *pair), pairs, valid))


def with_known_ids(value, known: dict):
    if isinstance(value, dict):
        return {key: with_known_ids(item, known) for key, item in value.items()}
    if isinstance(value, list):
        return [with_known_ids(item, known) for item in value]
    return known.get(value, value) if isinstance(value, str) else value


def test_every_endpoint_has_a_valid_request_here():
    assert set(VALID) == set(METHODS)


@pytest.fixture
def known(experiment):
    """The ids that the valid requests name."""
    experiment.name = "known"
    experiment.save()
    services.experiment_set_tag(experiment=experiment, key="team", value="vision")
    run = services.run_create(experiment=experiment, name="known")
    services.run_log_metric(run=run, metric=services.MetricInput("loss", 0.1, 1))
    model = logged_models.logged_model_create(
        experiment=experiment, name="known", tags=[services.KeyValue("team", "x")]
    )
    return {RUN: run.run_id, EXPERIMENT: str(experiment.pk), MODEL: model.model_id}


def url(rpc: str, known: dict) -> str:
    """The endpoint's address, its path parameters filled with known ids."""
    return API + rpc.replace("<str:model_id>", known[MODEL]).replace("<path:tag_key>", "team")


def assert_mlflow_answer(response):
    assert response.status_code in (200, 400, 404), response.content
    body = response.json()
    if response.status_code != 200:
        assert body["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS")
        assert body["message"]


RELAXED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("rpc", sorted(VALID))
@RELAXED
@given(data=st.data())
def test_any_body_near_a_valid_one_gets_an_mlflow_answer(client, known, rpc, data):
    body = with_known_ids(data.draw(near(VALID[rpc])), known)
    raw = json.dumps(body)  # lone surrogates travel escaped, NaN as a bare token
    assert_mlflow_answer(client.generic(METHODS[rpc], url(rpc, known), raw, content_type="application/json"))


@pytest.mark.parametrize("rpc", [rpc for rpc, method in METHODS.items() if method == "GET"])
@RELAXED
@given(query=st.dictionaries(st.sampled_from(["run_id", "experiment_id", "max_results"]) | st.text(), st.text()))
def test_any_query_string_gets_an_mlflow_answer(client, known, rpc, query):
    assert_mlflow_answer(client.get(url(rpc, known), query))


@RELAXED
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_body_get_an_mlflow_answer(client, raw):
    assert_mlflow_answer(client.generic("POST", API + "runs/log-batch", raw, content_type="application/json"))
