"""RUNTREE_AUTH=required: pages need a login, the APIs a token or HTTP Basic, viewers only read.

The seed workload (MLflow's nested tuning tutorial) runs through the real mlflow client."""

import base64
import json

import mlflow
import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from mlflow.exceptions import MlflowException

from tests.api import seed000_nested_tuning
from tests.trust.conftest import PASSWORD, make_user
from tracker.models import ApiToken, Experiment, Metric, Param, Run, RunTag
from tracker.web.auth import token_issue

# The seed's three rounds: 15 parents with 5 children each; a child logs 2 params and 2 metrics.
SEED_RUNS, SEED_PARAMS, SEED_METRICS = 90, 150, 150

API_PATHS = [
    "/api/2.0/mlflow/experiments/search",
    "/ajax-api/2.0/mlflow/experiments/search",
    "/api/v1/experiments/",
    "/api/2.0/mlflow-artifacts/artifacts?path=0",
    "/ajax-api/2.0/mlflow-artifacts/artifacts/0/x/artifacts/y.txt",
    "/api/2.0/mlflow/artifacts/list?run_id=x",
]


def assert_seed_stored():
    assert Run.objects.count() == SEED_RUNS
    assert Param.objects.count() == SEED_PARAMS
    assert Metric.objects.count() == SEED_METRICS
    assert RunTag.objects.filter(key="test_identifier").count() == SEED_RUNS
    assert Run.objects.filter(parent__isnull=False).count() == 75


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# --- the mlflow client ----------------------------------------------------------------------------


def test_the_seed_workload_logs_with_a_writers_token(auth_required, tracking_uri, writer_token, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", writer_token)
    seed000_nested_tuning.run_workload()
    assert_seed_stored()


def test_the_seed_workload_logs_with_basic_auth(auth_required, tracking_uri, writer, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", writer.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    seed000_nested_tuning.run_workload()
    assert_seed_stored()


def test_a_viewers_token_is_refused_at_the_first_write_and_stores_nothing(
    auth_required, tracking_uri, writer, viewer_token, monkeypatch
):
    # The experiment exists, so the viewer gets past set_experiment's read to the first write.
    Experiment.objects.create(name="Nested Child Association", creation_time=0, last_update_time=0)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", viewer_token)
    with pytest.raises(MlflowException) as refusal:
        seed000_nested_tuning.run_workload()
    assert refusal.value.error_code == "PERMISSION_DENIED"
    assert "viewer" in refusal.value.message
    assert Run.objects.count() == 0
    assert (Param.objects.count(), Metric.objects.count(), RunTag.objects.count()) == (0, 0, 0)


def test_a_viewer_reads_and_searches_but_creates_no_experiment(
    auth_required, tracking_uri, writer_token, viewer_token, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", writer_token)
    mlflow.set_experiment("Nested Child Association")
    seed000_nested_tuning.execute_tuning(0, test_identifier="round_one")  # a parent and 5 children
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", viewer_token)
    runs = mlflow.search_runs(
        experiment_names=["Nested Child Association"], filter_string="tags.test_identifier = 'round_one'"
    )
    assert len(runs) == 6
    assert mlflow.get_experiment_by_name("Nested Child Association") is not None
    with pytest.raises(MlflowException, match="viewer"):
        mlflow.create_experiment("not allowed")
    assert not Experiment.objects.filter(name="not allowed").exists()


# --- the HTTP contract ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", API_PATHS)
def test_no_credential_gets_401_in_mlflows_json_with_a_challenge(auth_required, live_server, default_experiment, path):
    response = requests.get(live_server.url + path, timeout=10)
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert "MLFLOW_TRACKING_TOKEN" in response.json()["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info"])
def test_server_info_answers_without_a_credential_as_mlflows_does(auth_required, live_server, path):
    # Clients read it before they authenticate; it says how the server is set up, nothing stored.
    response = requests.get(live_server.url + path, timeout=10)
    assert response.status_code == 200
    assert response.json()["multipart_uploads_enabled"] is False


@pytest.mark.parametrize(
    "path", ["/api/3.0/mlflow/server-info/", "/api/3.0/mlflow/server-info/x", "/api/3.0/mlflow/traces/search"]
)
def test_nothing_beside_server_info_answers_without_a_credential(auth_required, client, transactional_db, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_a_revoked_token_gets_401(auth_required, live_server, writer, writer_token):
    url = live_server.url + API_PATHS[0]
    assert requests.get(url, headers=bearer(writer_token), timeout=10).status_code == 200
    call_command("createtoken", writer.username, revoke=writer_token[:8])
    response = requests.get(url, headers=bearer(writer_token), timeout=10)
    assert response.status_code == 401
    assert response.json() == {
        "error_code": "UNAUTHENTICATED",
        "message": "The API token is not valid: it is unknown or was revoked.",
    }


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-token",
        "Basic " + base64.b64encode(b"wanda:wrong password").decode(),
        "Basic !!not base64!!",
        "Digest username=wanda",
    ],
)
def test_a_wrong_credential_gets_401(auth_required, client, writer, authorization):
    response = client.get(API_PATHS[0], headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_a_viewers_log_batch_is_403_and_stores_nothing(auth_required, client, viewer_token):
    run = Run.objects.create(experiment=Experiment.objects.create(name="e", creation_time=0, last_update_time=0))
    response = client.post(
        "/api/2.0/mlflow/runs/log-batch",
        {"run_id": run.run_id, "params": [{"key": "p", "value": "1"}]},
        content_type="application/json",
        headers=bearer(viewer_token),
    )
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert not Param.objects.exists()


def test_a_viewer_downloads_and_lists_artifacts_but_cannot_upload_or_delete(
    auth_required, client, writer_token, viewer_token, artifact_root
):
    run = Run.objects.create(experiment=Experiment.objects.create(name="e", creation_time=0, last_update_time=0))
    store = "/api/2.0/mlflow-artifacts/artifacts"
    folder = f"{store}/{run.experiment_id}/{run.run_id}/artifacts"
    stored = client.put(f"{folder}/a.txt", b"kept", content_type="text/plain", headers=bearer(writer_token))
    assert stored.status_code == 200

    read = client.get(f"{folder}/a.txt", headers=bearer(viewer_token))
    assert b"".join(read.streaming_content) == b"kept"
    listing = client.get(store, {"path": folder.removeprefix(store + "/")}, headers=bearer(viewer_token))
    assert listing.json()["files"] == [{"path": "a.txt", "is_dir": False, "file_size": 4}]
    for refused in (
        client.put(f"{folder}/b.txt", b"new", content_type="text/plain", headers=bearer(viewer_token)),
        client.put(f"{folder}/a.txt", b"overwritten", content_type="text/plain", headers=bearer(viewer_token)),
        client.delete(f"{folder}/a.txt", headers=bearer(viewer_token)),
    ):
        assert refused.status_code == 403
        assert refused.json()["error_code"] == "PERMISSION_DENIED"
    files = [path for path in artifact_root.rglob("*") if path.is_file()]
    assert [(path.name, path.read_bytes()) for path in files] == [("a.txt", b"kept")]


def test_a_script_downloads_through_get_artifact_with_its_token_and_nothing_without(
    auth_required, client, writer_token, viewer_token, artifact_root
):
    # MLflow's downloads at the root (/get-artifact, /model-versions/get-artifact) are APIs:
    # a token or Basic credential is taken there as on /api/, and no credential is a JSON 401.
    as_writer = bearer(writer_token)

    def write(rpc: str, body: dict) -> dict:
        return client.post(f"/api/2.0/mlflow/{rpc}", body, content_type="application/json", headers=as_writer).json()

    experiment_id = write("experiments/create", {"name": "e"})["experiment_id"]
    run_id = write("runs/create", {"experiment_id": experiment_id})["run"]["info"]["run_id"]
    folder = f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts"
    assert client.put(f"{folder}/a.txt", b"kept", content_type="text/plain", headers=as_writer).status_code == 200
    url = f"/get-artifact?run_id={run_id}&path=a.txt"
    read = client.get(url, headers=bearer(viewer_token))
    assert read.status_code == 200
    assert b"".join(read.streaming_content) == b"kept"
    anonymous = client.get(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["error_code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("rpc", ["runs/search", "experiments/search"])
def test_a_viewer_may_post_the_read_only_searches(auth_required, client, viewer_token, rpc, default_experiment):
    body = {"experiment_ids": ["0"]}
    response = client.post(
        f"/api/2.0/mlflow/{rpc}", body, content_type="application/json", headers=bearer(viewer_token)
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "rpc, fields",
    [
        ("experiments/set-experiment-tag", {"key": "team", "value": "speech"}),
        ("experiments/delete-experiment-tag", {"key": "team"}),
    ],
)
def test_an_experiment_tag_is_written_by_writers_only(auth_required, client, viewer_token, writer_token, rpc, fields):
    experiment = Experiment.objects.create(name="e", creation_time=0, last_update_time=0)
    experiment.tags.create(key="team", value="vision")
    body = {"experiment_id": str(experiment.pk), **fields}
    url = f"/api/2.0/mlflow/{rpc}"
    assert client.post(url, body, content_type="application/json").status_code == 401
    refused = client.post(url, body, content_type="application/json", headers=bearer(viewer_token))
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "PERMISSION_DENIED"
    assert experiment.tag_dict() == {"team": "vision"}
    written = client.post(url, body, content_type="application/json", headers=bearer(writer_token))
    assert written.status_code == 200, written.content
    assert experiment.tag_dict() != {"team": "vision"}


def test_a_user_without_a_role_may_do_nothing(auth_required, client, transactional_db):
    nobody = make_user("nobody", None)
    response = client.get(API_PATHS[0], headers=bearer(token_issue(user=nobody)))
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    client.force_login(nobody)
    assert client.get("/").status_code == 403


# --- pages ----------------------------------------------------------------------------------------


def test_pages_redirect_to_the_login_and_work_after_it(auth_required, client, viewer, default_experiment):
    response = client.get("/experiments/0/?filter=tags.a%3D%27b%27")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/experiments/0/%3Ffilter%3Dtags.a%253D%2527b%2527"
    login_page = client.get(response["Location"])
    assert login_page.status_code == 200
    assert b'class="topbar"' in login_page.content  # the product's frame, from base.html
    response = client.post(
        "/accounts/login/", {"username": viewer.username, "password": PASSWORD, "next": "/experiments/0/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/experiments/0/"
    assert client.get("/experiments/0/").status_code == 200
    assert client.get("/").status_code == 200


def test_a_wrong_password_shows_the_login_again(auth_required, client, viewer):
    response = client.post("/accounts/login/", {"username": viewer.username, "password": "nope"})
    assert response.status_code == 200
    assert b"did not match" in response.content


def test_a_logged_in_browser_reads_the_apis_but_writes_only_with_the_csrf_token(
    auth_required, writer, default_experiment
):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.get("/accounts/login/")  # sets the CSRF cookie, as any page with a form does
    browser.force_login(writer)
    assert browser.get(API_PATHS[2]).status_code == 200
    body = {"name": "from the browser"}
    response = browser.post("/ajax-api/2.0/mlflow/experiments/create", body, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["message"]
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        "/ajax-api/2.0/mlflow/experiments/create", body, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200
    assert Experiment.objects.filter(name="from the browser").exists()


def test_logging_out_ends_the_session(auth_required, client, viewer):
    client.force_login(viewer)
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


# --- off --------------------------------------------------------------------------------------------


def test_with_auth_off_everything_is_open(settings, tracking_uri):
    assert settings.RUNTREE_AUTH == "off"
    mlflow.set_experiment("Nested Child Association")
    seed000_nested_tuning.execute_tuning(0)
    assert Run.objects.count() == 6
    assert requests.get(tracking_uri + "/", timeout=10).status_code == 200
    assert requests.get(tracking_uri + API_PATHS[2], timeout=10).status_code == 200


# --- the commands and what they store ----------------------------------------------------------------


def test_createuser_makes_a_viewer_with_a_password_from_the_environment(db, monkeypatch, client, settings):
    settings.RUNTREE_AUTH = "required"
    monkeypatch.setenv("VICTOR_PASSWORD", PASSWORD)
    call_command("createuser", "victor", role="viewer", password_from_env="VICTOR_PASSWORD")
    victor = User.objects.get(username="victor")
    assert victor.check_password(PASSWORD)
    assert list(victor.groups.values_list("name", flat=True)) == ["viewers"]
    call_command("createuser", "victor", role="writer")  # a change of role keeps the password
    victor.refresh_from_db()
    assert list(victor.groups.values_list("name", flat=True)) == ["writers"]
    assert victor.check_password(PASSWORD)


def test_createuser_refuses_an_unset_password_variable(db):
    with pytest.raises(CommandError, match="NO_SUCH_VARIABLE is unset"):
        call_command("createuser", "x", role="viewer", password_from_env="NO_SUCH_VARIABLE")
    assert not User.objects.filter(username="x").exists()


def test_a_user_made_without_a_password_cannot_log_in_with_one(db):
    call_command("createuser", "robot", role="writer")
    assert not User.objects.get(username="robot").has_usable_password()


def test_createtoken_shows_the_token_once_and_stores_only_its_digest(db, capsys):
    call_command("createuser", "wanda", role="writer")
    call_command("createtoken", "wanda")
    out, err = capsys.readouterr()
    token = out.split()[-1]
    assert len(token) >= 43  # 32 random bytes
    assert "only time" in err
    stored = ApiToken.objects.get()
    assert stored.prefix == token[:8]
    assert token not in (stored.digest, stored.prefix)
    assert len(stored.digest) == 64


def test_createtoken_revokes_only_the_named_token(db, capsys):
    call_command("createuser", "wanda", role="writer")
    capsys.readouterr()
    call_command("createtoken", "wanda")
    call_command("createtoken", "wanda")
    first, second = capsys.readouterr().out.split()
    call_command("createtoken", "wanda", revoke=first[:8])
    assert list(ApiToken.objects.active().values_list("prefix", flat=True)) == [second[:8]]
    with pytest.raises(CommandError, match="no active token"):
        call_command("createtoken", "wanda", revoke=first[:8])
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("createtoken", "nobody")


# --- the model registry's endpoints: viewers read, writers write ---------------------------------

# Every registry RPC with a request that would succeed for a writer: (method, rpc, fields).
REGISTRY_RPCS = [
    ("POST", "registered-models/create", {"name": "churn"}),
    ("GET", "registered-models/get", {"name": "fraud"}),
    ("POST", "registered-models/rename", {"name": "fraud", "new_name": "fraud-2"}),
    ("PATCH", "registered-models/update", {"name": "fraud", "description": "d"}),
    ("DELETE", "registered-models/delete", {"name": "fraud"}),
    ("GET", "registered-models/search", {"filter": "name LIKE 'f%'"}),
    ("GET", "registered-models/get-latest-versions", {"name": "fraud"}),
    ("POST", "registered-models/get-latest-versions", {"name": "fraud"}),
    ("POST", "registered-models/set-tag", {"name": "fraud", "key": "k", "value": "v"}),
    ("DELETE", "registered-models/delete-tag", {"name": "fraud", "key": "team"}),
    ("POST", "registered-models/alias", {"name": "fraud", "alias": "challenger", "version": "1"}),
    ("DELETE", "registered-models/alias", {"name": "fraud", "alias": "champion"}),
    ("GET", "registered-models/alias", {"name": "fraud", "alias": "champion"}),
    ("POST", "model-versions/create", {"name": "fraud", "source": "runs:/{run_id}/model", "run_id": "{run_id}"}),
    ("GET", "model-versions/get", {"name": "fraud", "version": "1"}),
    ("PATCH", "model-versions/update", {"name": "fraud", "version": "1", "description": "d"}),
    ("DELETE", "model-versions/delete", {"name": "fraud", "version": "1"}),
    ("GET", "model-versions/search", {"filter": "name = 'fraud'"}),
    ("POST", "model-versions/transition-stage", {"name": "fraud", "version": "1", "stage": "Production"}),
    ("POST", "model-versions/set-tag", {"name": "fraud", "version": "1", "key": "k", "value": "v"}),
    ("DELETE", "model-versions/delete-tag", {"name": "fraud", "version": "1", "key": "data"}),
    ("GET", "model-versions/get-download-uri", {"name": "fraud", "version": "1"}),
]


@pytest.fixture
def registered_fraud(transactional_db):
    """Model 'fraud' (tag team) with version 1 (tag data) from a run, @champion on it."""
    from registry import services  # the registry is an app of its own; tracker's tests need not load it

    run = Run.objects.create(experiment=Experiment.objects.create(name="e", creation_time=0, last_update_time=0))
    model = services.registered_model_create(name="fraud", tags=[services.Tag("team", "risk")])
    source = services.resolve_source(source=f"runs:/{run.run_id}/model", run_id=run.run_id)
    services.model_version_create(model=model, source=source, tags=[services.Tag("data", "2026")])
    services.registered_model_set_alias(model=model, alias="champion", version=1)
    return run


def registry_state() -> list:
    from registry.models import ModelVersion, ModelVersionTag, RegisteredModel, RegisteredModelAlias, RegisteredModelTag

    return [
        list(RegisteredModel.objects.values_list("name", "description", "last_updated_time")),
        list(ModelVersion.objects.values_list("version", "stage", "description")),
        list(RegisteredModelTag.objects.values_list("key", "value")),
        list(ModelVersionTag.objects.values_list("key", "value")),
        list(RegisteredModelAlias.objects.values_list("alias", "version__version")),
    ]


def call_registry(client, method: str, rpc: str, fields: dict, run: Run, token: str | None):
    fields = {key: value.format(run_id=run.run_id) for key, value in fields.items()}
    headers = bearer(token) if token else {}
    if method == "GET":
        return client.get(f"/api/2.0/mlflow/{rpc}", fields, headers=headers)
    return client.generic(
        method, f"/api/2.0/mlflow/{rpc}", json.dumps(fields), content_type="application/json", headers=headers
    )


def test_the_registry_matrix_covers_every_registry_endpoint():
    from registry.api import mlflow_urls

    served = {(method, str(url.pattern)) for url in mlflow_urls.urlpatterns for method in url.callback.http_methods}
    assert served == {(method, rpc) for method, rpc, _ in REGISTRY_RPCS}


@pytest.mark.parametrize("method, rpc, fields", REGISTRY_RPCS, ids=[f"{m} {r}" for m, r, _ in REGISTRY_RPCS])
def test_the_registry_answers_viewers_reads_refuses_their_writes_and_serves_writers(
    auth_required, client, registered_fraud, viewer_token, writer_token, method, rpc, fields
):
    assert call_registry(client, method, rpc, fields, registered_fraud, None).status_code == 401
    before = registry_state()
    as_viewer = call_registry(client, method, rpc, fields, registered_fraud, viewer_token)
    if method == "GET" or rpc == "registered-models/get-latest-versions":
        assert as_viewer.status_code == 200, as_viewer.content
    else:
        assert as_viewer.status_code == 403
        assert as_viewer.json()["error_code"] == "PERMISSION_DENIED"
    assert registry_state() == before
    as_writer = call_registry(client, method, rpc, fields, registered_fraud, writer_token)
    assert as_writer.status_code == 200, as_writer.content
