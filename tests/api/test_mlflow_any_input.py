"""Whatever a client sends, the MLflow API answers in MLflow's JSON and never with a 500."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracker import ingest
from tracker.api.mlflow_urls import urlpatterns

pytestmark = pytest.mark.django_db

API = "/api/2.0/mlflow/"
RPCS = [(str(p.pattern), p.callback.http_methods[0]) for p in urlpatterns if hasattr(p.callback, "http_methods")]
FIELDS = [
    "run_id", "run_uuid", "experiment_id", "experiment_ids", "experiment_name", "name", "new_name", "key",
    "value", "timestamp", "step", "metrics", "params", "tags", "status", "end_time", "start_time",
    "run_name", "user_id", "filter", "order_by", "max_results", "page_token", "view_type",
    "run_view_type", "metric_key", "artifact_location",
]  # fmt: skip

# Every character, lone surrogates and NUL included.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | any_text, inner, max_size=4),
    max_leaves=12,
)
RELAXED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def known(experiment):
    """Ids that exist, so generated requests get past the lookups some of the time."""
    run = ingest.run_create(experiment=experiment, name="known")
    return {"run_id": run.run_id, "experiment_id": str(experiment.pk)}


def answer_is_mlflow_json(response):
    assert response.status_code in (200, 400, 404), response.content
    body = response.json()
    if response.status_code != 200:
        assert body["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS")
        assert body["message"]


@pytest.mark.parametrize(("rpc", "method"), RPCS)
@RELAXED
@given(body=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6), use_known_ids=st.booleans())
def test_any_json_body_gets_an_mlflow_answer(client, known, rpc, method, body, use_known_ids):
    if use_known_ids:
        body = {**body, **{k: v for k, v in known.items() if k in body}}
    data = json.dumps(body)  # lone surrogates travel escaped; NaN as a bare token
    answer_is_mlflow_json(client.generic(method, API + rpc, data, content_type="application/json"))


@pytest.mark.parametrize("rpc", ["runs/get", "experiments/get", "experiments/get-by-name", "metrics/get-history"])
@RELAXED
@given(query=st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=30) | st.lists(st.text(max_size=10))))
def test_any_query_string_gets_an_mlflow_answer(client, known, rpc, query):
    answer_is_mlflow_json(client.get(API + rpc, query))


@RELAXED
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_body_get_an_mlflow_answer(client, raw):
    answer_is_mlflow_json(client.generic("POST", API + "runs/log-batch", raw, content_type="application/json"))
