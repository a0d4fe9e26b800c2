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
    alias = client.put("/api/2.0/mlflow/registered-models/alias", "{}", content_type="application/json")
    assert alias.status_code == 405 and alias.json()["error_code"] == "ENDPOINT_NOT_FOUND"


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
