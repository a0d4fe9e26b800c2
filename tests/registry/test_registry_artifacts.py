"""A version's files through MLflow's `/model-versions/get-artifact?name=&version=&path=` (how
mlflow's UI reads a version's MLmodel), against a live Runtree with files the mlflow client
logged: each file comes back as a sandboxed attachment, from a run's folder or a logged model's;
a path that leaves the version's folder is a JSON 400; every refusal is MLflow's error JSON,
never a page."""

import mlflow
import pytest
import requests

pytestmark = pytest.mark.usefixtures("artifact_root")

MLMODEL = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"


@pytest.fixture
def fraud(tracking_uri, mlflow_client):
    """Version 1 of "fraud", registered from a run's `model` folder; the run also has a file
    outside that folder. Returns the server's URL."""
    with mlflow.start_run() as run:
        mlflow.log_text(MLMODEL, "model/MLmodel")
        mlflow.log_text("<script>alert(1)</script>", "model/docs/card.html")
        mlflow.log_text("the run's, not the version's", "notes.txt")
    mlflow_client.create_registered_model("fraud")
    mlflow_client.create_model_version("fraud", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return tracking_uri


def get_artifact(url: str, method: str = "GET", *, allow_redirects: bool = True, **params) -> requests.Response:
    return requests.request(
        method, f"{url}/model-versions/get-artifact", params=params, timeout=10, allow_redirects=allow_redirects
    )


def test_mlflows_ui_reads_a_versions_mlmodel(fraud):
    response = get_artifact(fraud, name="fraud", version="1", path="MLmodel")
    assert response.status_code == 200
    assert response.text == MLMODEL
    assert response.headers["Content-Disposition"] == 'attachment; filename="MLmodel"'


def test_a_versions_file_is_a_download_that_runs_nothing_here(fraud):
    response = get_artifact(fraud, name="fraud", version="1", path="docs/card.html")
    assert response.content == b"<script>alert(1)</script>"
    assert response.headers["Content-Disposition"] == 'attachment; filename="card.html"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].startswith("sandbox;")
    head = get_artifact(fraud, "HEAD", name="fraud", version="1", path="MLmodel")
    assert (head.status_code, head.content, head.headers["Content-Length"]) == (200, b"", str(len(MLMODEL)))


def test_a_version_from_a_logged_model_or_another_version_serves_the_same_files(tracking_uri, mlflow_client, tmp_path):
    model = mlflow_client.create_logged_model("0", name="card")
    (tmp_path / "MLmodel").write_text(MLMODEL)
    mlflow_client.log_model_artifacts(model.model_id, str(tmp_path))
    mlflow_client.create_registered_model("card")
    mlflow_client.create_model_version("card", f"models:/{model.model_id}", model_id=model.model_id)
    mlflow_client.create_registered_model("card-prod")
    mlflow_client.create_model_version("card-prod", "models:/card/1")

    assert get_artifact(tracking_uri, name="card", version="1", path="MLmodel").text == MLMODEL
    assert get_artifact(tracking_uri, name="card-prod", version="1", path="MLmodel").text == MLMODEL


@pytest.mark.parametrize(
    "path",
    ["../notes.txt", "docs/../../notes.txt", "%2e%2e/notes.txt", "..%2fnotes.txt", "/etc/passwd", "..\\notes.txt"],
)
def test_a_path_that_leaves_the_versions_folder_is_refused_with_json_400(fraud, path):
    response = get_artifact(fraud, name="fraud", version="1", path=path)
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "the run's" not in response.text


@pytest.mark.parametrize(
    ("params", "status", "error_code"),
    [
        ({"name": "fraud", "version": "1", "path": "nope.txt"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ({"name": "fraud", "version": "1", "path": "docs"}, 400, "INVALID_PARAMETER_VALUE"),  # a folder
        ({"name": "fraud", "version": "1", "path": ""}, 400, "INVALID_PARAMETER_VALUE"),
        ({"name": "fraud", "version": "1"}, 400, "INVALID_PARAMETER_VALUE"),
        ({"name": "nope", "version": "1", "path": "MLmodel"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ({"name": "fraud", "version": "9", "path": "MLmodel"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ({"name": "fraud", "version": "x", "path": "MLmodel"}, 400, "INVALID_PARAMETER_VALUE"),
        ({"name": "fraud", "path": "MLmodel"}, 400, "INVALID_PARAMETER_VALUE"),
        ({"version": "1", "path": "MLmodel"}, 400, "INVALID_PARAMETER_VALUE"),
    ],
)
def test_every_refusal_is_mlflows_error_json(fraud, params, status, error_code):
    response = get_artifact(fraud, **params)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error_code"] == error_code


def test_a_version_whose_files_are_elsewhere_is_json_404(tracking_uri, mlflow_client):
    mlflow_client.create_registered_model("elsewhere")
    mlflow_client.create_model_version("elsewhere", "s3://bucket/fraud/model")
    response = get_artifact(tracking_uri, name="elsewhere", version="1", path="MLmodel")
    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_write_method_is_json_405(fraud):
    response = get_artifact(fraud, "POST", name="fraud", version="1", path="MLmodel")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_with_auth_required_no_file_is_given_without_a_credential(fraud, settings):
    settings.RUNTREE_AUTH = "required"
    response = get_artifact(fraud, name="fraud", version="1", path="MLmodel", allow_redirects=False)
    # An API's refusal (tests/trust/test_access_control.py: a token gets the file).
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert MLMODEL not in response.text
