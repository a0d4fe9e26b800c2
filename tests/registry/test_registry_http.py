"""The registry's HTTP contract as MLflow's server has it: both prefixes, methods, JSON errors."""

import json

import pytest

from registry import services
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def fraud():
    run = RunFactory()
    model = services.registered_model_create(name="fraud")
    source = services.resolve_source(source=f"runs:/{run.run_id}/model", run_id=run.run_id)
    services.model_version_create(model=model, source=source)
    return run


@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"])
def test_both_prefixes_answer(client, fraud, prefix):
    body = client.get(f"{prefix}/registered-models/get", {"name": "fraud"}).json()
    assert body["registered_model"]["latest_versions"][0]["version"] == "1"
    assert body["registered_model"]["latest_versions"][0]["status"] == "READY"


def test_what_a_version_was_registered_without_is_sent_as_an_empty_string(client, fraud):
    """As mlflow's server sends a version (its store keeps "" for what the request left out);
    a registered model's empty description it leaves out."""
    created = client.post(
        "/api/2.0/mlflow/model-versions/create",
        json.dumps({"name": "fraud", "source": "s3://bucket/fraud/model"}),
        content_type="application/json",
    ).json()["model_version"]
    read = client.get("/api/2.0/mlflow/model-versions/get", {"name": "fraud", "version": "2"}).json()["model_version"]
    for version in (created, read):
        assert {key: version[key] for key in ("description", "run_id", "run_link")} == {
            "description": "",
            "run_id": "",
            "run_link": "",
        }
        assert "status_message" not in version and "user_id" not in version
    model = client.get("/api/2.0/mlflow/registered-models/get", {"name": "fraud"}).json()["registered_model"]
    assert "description" not in model


def test_a_wrong_method_is_405_with_allow_in_json(client, fraud):
    response = client.post("/api/2.0/mlflow/registered-models/get", {"name": "fraud"}, content_type="application/json")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_a_wrong_method_on_the_alias_endpoint_lists_its_three_methods(client, fraud):
    alias = client.put("/api/2.0/mlflow/registered-models/alias", "{}", content_type="application/json")
    assert alias.status_code == 405 and alias.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert alias["Allow"] == "POST, DELETE, GET"
    assert alias.json()["message"] == "/api/2.0/mlflow/registered-models/alias accepts POST, DELETE, GET, not PUT."


def test_an_unknown_registry_path_is_mlflows_json_404(client):
    response = client.post("/api/2.0/mlflow/registered-models/frobnicate", "{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_a_body_that_is_not_json_is_400_and_creates_nothing(client):
    response = client.post("/api/2.0/mlflow/registered-models/create", "{name", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({}, "Missing value for required parameter 'name'"),
        ({"name": 7}, "expected a string"),
        ({"name": "ok", "tags": [{"key": "bad key!"}]}, "Invalid tag key"),
    ],
)
def test_a_malformed_create_names_the_field(client, fields, message):
    response = client.post(
        "/api/2.0/mlflow/registered-models/create", json.dumps(fields), content_type="application/json"
    )
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_a_version_can_be_registered_from_another_registered_version(client, fraud):
    services.registered_model_create(name="fraud-prod")
    response = client.post(
        "/api/2.0/mlflow/model-versions/create",
        json.dumps({"name": "fraud-prod", "source": "models:/fraud/1"}),
        content_type="application/json",
    )
    version = response.json()["model_version"]
    assert (version["source"], version["run_id"]) == ("models:/fraud/1", fraud.run_id)
    uri = client.get("/api/2.0/mlflow/model-versions/get-download-uri", {"name": "fraud-prod", "version": "1"})
    assert uri.json() == {"artifact_uri": f"{fraud.artifact_uri}/model"}


def test_latest_of_a_model_without_versions_is_resource_does_not_exist(client):
    services.registered_model_create(name="empty")
    response = client.get("/api/2.0/mlflow/registered-models/alias", {"name": "empty", "alias": "latest"})
    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize(
    "rpc, filter_text, message",
    [
        (
            "registered-models/search",
            "bogus = 'x'",
            "Invalid registered model filter at position 0: expected a column (name, tags.<key>) but found 'bogus'",
        ),
        (
            "registered-models/search",
            "name LIKE 'churn%' OR",
            "Invalid registered model filter at position 19: expected AND or the end of the filter but found 'OR'",
        ),
        (
            "model-versions/search",
            "version_number = 'one'",
            "Invalid model version filter at position 17: expected an integer to compare version_number with "
            "but found 'one'",
        ),
    ],
)
def test_a_filter_error_quotes_only_what_was_sent(client, fraud, rpc, filter_text, message):
    response = client.get(f"/api/2.0/mlflow/{rpc}", {"filter": filter_text})
    assert response.status_code == 400
    assert response.json()["message"] == message


VERSION_RPCS = [
    ("GET", "model-versions/get", {}),
    ("GET", "model-versions/get-download-uri", {}),
    ("GET", "/model-versions/get-artifact", {"path": "MLmodel"}),  # at the root, as mlflow serves it
    ("PATCH", "model-versions/update", {"description": "d"}),
    ("POST", "model-versions/transition-stage", {"stage": "Staging"}),
    ("POST", "model-versions/set-tag", {"key": "team", "value": "risk"}),
    ("DELETE", "model-versions/delete-tag", {"key": "team"}),
    ("DELETE", "model-versions/delete", {}),
    ("POST", "registered-models/alias", {"alias": "champion"}),
]


def call(client, method: str, rpc: str, fields: dict):
    url = rpc if rpc.startswith("/") else f"/api/2.0/mlflow/{rpc}"
    if method == "GET":
        return client.get(url, fields)
    return client.generic(method, url, json.dumps(fields), content_type="application/json")


@pytest.mark.parametrize("method, rpc, fields", VERSION_RPCS, ids=[rpc for _, rpc, _ in VERSION_RPCS])
@pytest.mark.parametrize("version", ["0", "-1", "99999999999999999999"])
def test_a_version_that_cannot_exist_is_not_found_as_in_mlflow(client, fraud, method, rpc, fields, version):
    response = call(client, method, rpc, {"name": "fraud", "version": version, **fields})
    assert response.status_code == 404
    assert response.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": f"Model Version (name=fraud, version={version}) not found",
    }


@pytest.mark.parametrize("method, rpc, fields", VERSION_RPCS, ids=[rpc for _, rpc, _ in VERSION_RPCS])
def test_a_version_that_is_not_an_integer_is_invalid_parameter_value(client, fraud, method, rpc, fields):
    response = call(client, method, rpc, {"name": "fraud", "version": "1.5", **fields})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
