"""The registry in the native API (/api/v1/): models and versions, listed and filtered, in the
OpenAPI schema."""

import pytest

from registry import services
from tests.factories import RunFactory
from tracker.models import DELETED
from tracker.services import run_set_lifecycle

pytestmark = pytest.mark.django_db


@pytest.fixture
def fraud():
    run = RunFactory()
    model = services.registered_model_create(name="fraud", description="boosted", tags=[services.Tag("team", "risk")])
    for _ in range(2):
        source = services.resolve_source(source=f"runs:/{run.run_id}/model", run_id=run.run_id)
        version = services.model_version_create(model=model, source=source)
    services.model_version_transition_stage(version=version, stage="Production")
    services.registered_model_set_alias(model=model, alias="champion", version=2)
    services.registered_model_create(name="churn")
    return run


def test_models_are_listed_with_latest_versions_aliases_and_tags(client, fraud):
    body = client.get("/api/v1/models/").json()
    assert [model["name"] for model in body["results"]] == ["churn", "fraud"]
    fraud_model = body["results"][1]
    assert fraud_model["latest_versions"] == {"None": 1, "Production": 2}
    assert (fraud_model["aliases"], fraud_model["tags"], fraud_model["version_count"]) == (
        {"champion": 2},
        {"team": "risk"},
        2,
    )
    assert client.get("/api/v1/models/fraud/").json()["description"] == "boosted"
    assert [m["name"] for m in client.get("/api/v1/models/", {"filter": "name LIKE 'fr%'"}).json()["results"]] == [
        "fraud"
    ]


def test_versions_are_filtered_by_run_and_say_when_their_run_is_gone(client, fraud):
    run_set_lifecycle(run=fraud, stage=DELETED)
    body = client.get("/api/v1/model-versions/", {"filter": f"run_id = '{fraud.run_id}'"}).json()
    assert [(v["name"], v["version"], v["stage"]) for v in body["results"]] == [
        ("fraud", 2, "Production"),
        ("fraud", 1, "None"),
    ]
    assert body["results"][0]["aliases"] == ["champion"]
    assert all(v["run_deleted"] for v in body["results"])


def test_a_bad_filter_is_a_400_in_mlflows_shape(client, fraud):
    response = client.get("/api/v1/models/", {"filter": "size > 3"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert client.get("/api/v1/models/nope/").status_code == 404


def test_a_filter_error_quotes_only_the_filter_sent(client, fraud):
    response = client.get("/api/v1/models/", {"filter": "bad"})
    assert response.json()["message"] == (
        "Invalid registered model filter at position 0: expected a column (name, tags.<key>) but found 'bad'"
    )


def test_the_listings_are_in_the_openapi_schema(client):
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()
    assert {"/api/v1/models/", "/api/v1/models/{name}/", "/api/v1/model-versions/"} <= set(schema["paths"])


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/v1/models/nobody/", 404, "RESOURCE_DOES_NOT_EXIST"),
        ("/api/v1/models/?format=xml", 406, "INVALID_PARAMETER_VALUE"),
    ],
)
def test_the_registrys_refusals_come_in_the_native_apis_one_error_shape(client, fraud, url, status, code):
    response = client.get(url)
    assert response.status_code == status
    assert response.json()["error_code"] == code
    assert set(response.json()) == {"error_code", "message"}
    refused = client.post("/api/v1/models/", {})
    assert (refused.status_code, refused.json()["error_code"]) == (405, "ENDPOINT_NOT_FOUND")
