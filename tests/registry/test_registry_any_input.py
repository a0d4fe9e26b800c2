"""Whatever a client sends to the registry, it answers in MLflow's JSON and never with a 500;
bodies are drawn near a valid request for each registry RPC, as for the tracking RPCs."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry import services as registry_services
from registry.api.mlflow_urls import urlpatterns
from tests.api.test_mlflow_any_input import RELAXED, assert_mlflow_answer, near, with_known_ids
from tracker import services
from tracker.services import logged_models

pytestmark = pytest.mark.django_db

API = "/api/2.0/mlflow/"
RUN, MODEL = "<known run id>", "<known model id>"
TAGS = [{"key": "team", "value": "risk"}]
VERSION = {"name": "fraud", "version": "1"}
VALID = {
    ("POST", "registered-models/create"): {"name": "churn", "description": "d", "tags": TAGS},
    ("GET", "registered-models/get"): {"name": "fraud"},
    ("POST", "registered-models/rename"): {"name": "fraud", "new_name": "fraud-2"},
    ("PATCH", "registered-models/update"): {"name": "fraud", "description": "d"},
    ("DELETE", "registered-models/delete"): {"name": "fraud"},
    ("GET", "registered-models/search"): {
        "filter": "name LIKE 'f%' AND tags.team = 'risk'",
        "max_results": 5,
        "order_by": ["last_updated_timestamp DESC"],
    },
    ("GET", "registered-models/get-latest-versions"): {"name": "fraud", "stages": ["Staging"]},
    ("POST", "registered-models/get-latest-versions"): {"name": "fraud", "stages": ["Production"]},
    ("POST", "registered-models/set-tag"): {"name": "fraud", "key": "team", "value": "risk"},
    ("DELETE", "registered-models/delete-tag"): {"name": "fraud", "key": "team"},
    ("POST", "registered-models/alias"): {"name": "fraud", "alias": "champion", "version": "1"},
    ("DELETE", "registered-models/alias"): {"name": "fraud", "alias": "champion"},
    ("GET", "registered-models/alias"): {"name": "fraud", "alias": "champion"},
    ("POST", "model-versions/create"): {
        "name": "fraud",
        "source": f"models:/{MODEL}",
        "run_id": RUN,
        "model_id": MODEL,
        "tags": TAGS,
        "description": "d",
        "run_link": "",
    },
    ("GET", "model-versions/get"): VERSION,
    ("PATCH", "model-versions/update"): {**VERSION, "description": "d"},
    ("DELETE", "model-versions/delete"): VERSION,
    ("GET", "model-versions/search"): {
        "filter": f"run_id = '{RUN}' AND version_number > 0",
        "max_results": 5,
        "order_by": ["version_number ASC"],
    },
    ("POST", "model-versions/transition-stage"): {**VERSION, "stage": "Staging", "archive_existing_versions": True},
    ("POST", "model-versions/set-tag"): {**VERSION, "key": "team", "value": "risk"},
    ("DELETE", "model-versions/delete-tag"): {**VERSION, "key": "team"},
    ("GET", "model-versions/get-download-uri"): VERSION,
}


def test_every_registry_rpc_has_a_valid_request_here():
    served = {(method, str(url.pattern)) for url in urlpatterns for method in url.callback.http_methods}
    assert set(VALID) == served


@pytest.fixture
def known(experiment):
    run = services.run_create(experiment=experiment, name="known")
    model = logged_models.logged_model_create(experiment=experiment, name="known", source_run=run)
    registered = registry_services.registered_model_create(name="fraud")
    source = registry_services.resolve_source(source=f"runs:/{run.run_id}/model", run_id=run.run_id)
    registry_services.model_version_create(model=registered, source=source)
    registry_services.registered_model_set_alias(model=registered, alias="champion", version=1)
    return {RUN: run.run_id, MODEL: model.model_id}


def query_text(value) -> str:
    """A drawn value as a query string can carry it: text as it is (a lone surrogate escaped),
    anything else as its JSON."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def request(client, method: str, rpc: str, body):
    if method == "GET":
        # The client sends a GET's fields as a query string, a list as repeated keys.
        if not isinstance(body, dict):
            return client.get(API + rpc, {"name": query_text(body)})
        query = {
            key: [query_text(item) for item in value] if isinstance(value, list) else query_text(value)
            for key, value in body.items()
            if value is not None
        }
        return client.get(API + rpc, query)
    return client.generic(method, API + rpc, json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("method, rpc", sorted(VALID), ids=[f"{m} {r}" for m, r in sorted(VALID)])
@RELAXED
@given(data=st.data())
def test_any_body_near_a_valid_one_gets_an_mlflow_answer(client, known, method, rpc, data):
    body = with_known_ids(data.draw(near(VALID[(method, rpc)])), known)
    assert_mlflow_answer(request(client, method, rpc, body))
