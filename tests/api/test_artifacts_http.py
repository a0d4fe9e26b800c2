"""The proxied artifact API over plain HTTP: MLflow's shapes, and every refusal (a path that
leaves its folder, a body over the limit or cut short) stores nothing."""

import io
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import RunFactory
from tracker.services import logged_models
from tracker.web.uploaded_content import DOWNLOAD_POLICY

pytestmark = pytest.mark.django_db

STORE = "/api/2.0/mlflow-artifacts/artifacts"
MODEL_ID = "m-" + "ab" * 16


@pytest.fixture
def run(experiment):
    run = RunFactory(experiment=experiment)
    run.artifact_uri = f"mlflow-artifacts:/{experiment.id}/{run.run_id}/artifacts"  # as runs/create sets it
    run.save(update_fields=["artifact_uri"])
    return run


@pytest.fixture
def folder(run):
    return f"{run.experiment_id}/{run.run_id}/artifacts"


def put(client, path: str, data: bytes = b"content", **extra):
    return client.generic("PUT", f"{STORE}/{path}", data, content_type="application/octet-stream", **extra)


def stored_files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def assert_refused(response, status: int, error_code: str, *says: str):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error_code"] == error_code
    for fragment in says:
        assert fragment in response.json()["message"]


def test_put_get_list_delete_in_mlflows_shapes(client, folder, artifact_root):
    assert put(client, f"{folder}/a/b.txt", b"hello").json() == {}
    assert put(client, f"{folder}/top.bin", b"\x00\x01").status_code == 200

    listing = client.get(STORE, {"path": folder}).json()
    assert listing == {"files": [{"path": "a", "is_dir": True}, {"path": "top.bin", "is_dir": False, "file_size": 2}]}
    assert client.get(STORE, {"path": f"{folder}/a"}).json() == {
        "files": [{"path": "b.txt", "is_dir": False, "file_size": 5}]
    }
    assert client.get(STORE, {"path": f"{folder}/empty"}).json() == {}  # nothing there: no "files"

    download = client.get(f"{STORE}/{folder}/a/b.txt")
    assert b"".join(download.streaming_content) == b"hello"
    assert download["Content-Length"] == "5"
    assert download["Content-Disposition"] == 'attachment; filename="b.txt"'
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Security-Policy"] == DOWNLOAD_POLICY

    assert client.delete(f"{STORE}/{folder}/a").json() == {}
    assert stored_files(artifact_root) == [f"{folder}/top.bin"]
    assert_refused(client.get(f"{STORE}/{folder}/a/b.txt"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_the_same_api_answers_under_ajax_api(client, folder):
    put(client, f"{folder}/x.txt", b"x")
    response = client.get("/ajax-api/2.0/mlflow-artifacts/artifacts", {"path": folder})
    assert response.json() == {"files": [{"path": "x.txt", "is_dir": False, "file_size": 1}]}


@pytest.mark.parametrize(
    "bad",
    [
        "../escape.txt",
        "a/../../escape.txt",
        "%2e%2e/escape.txt",
        "%252e%252e/escape.txt",
        "..%2fescape.txt",
        "a\\..\\escape.txt",
        "a/%00.txt",
        "a//b.txt",
        "./../a.txt",
        "a%23b.txt",
    ],
)
def test_a_path_that_leaves_its_folder_is_refused_and_nothing_is_written(client, folder, artifact_root, bad):
    # A NUL anywhere in a URL is refused before any view (tracker/web/request_guard.py).
    reason = "NUL character" if "%00" in bad else "Invalid artifact path"
    assert_refused(put(client, f"{folder}/{bad}"), 400, "INVALID_PARAMETER_VALUE", reason)
    assert_refused(client.get(f"{STORE}/{folder}/{bad}"), 400, "INVALID_PARAMETER_VALUE")
    assert_refused(client.delete(f"{STORE}/{folder}/{bad}"), 400, "INVALID_PARAMETER_VALUE")
    assert stored_files(artifact_root) == []


@pytest.mark.parametrize(
    "too_long", ["評価結果の詳細なレポート" * 8 + "/r.txt", "x" * 252 + ".txt", "/".join(["folder"] * 150) + "/r.txt"]
)
def test_a_name_or_path_longer_than_storage_takes_is_refused_with_400_and_leaves_nothing(
    client, folder, artifact_root, too_long
):
    # Storage failed these with a 500 (file name too long), which the mlflow client retries for minutes.
    assert_refused(put(client, f"{folder}/{too_long}"), 400, "INVALID_PARAMETER_VALUE", "at most 255 bytes")
    assert_refused(client.get(f"{STORE}/{folder}/{too_long}"), 400, "INVALID_PARAMETER_VALUE")
    assert_refused(client.get(STORE, {"path": f"{folder}/{too_long}"}), 400, "INVALID_PARAMETER_VALUE")
    assert_refused(client.delete(f"{STORE}/{folder}/{too_long}"), 400, "INVALID_PARAMETER_VALUE")
    assert [path for path in artifact_root.rglob("*")] == []  # not even an empty folder

    longest_name = "x" * 251 + ".txt"  # 255 bytes
    assert put(client, f"{folder}/{longest_name}", b"fits").status_code == 200
    assert stored_files(artifact_root) == [f"{folder}/{longest_name}"]


@pytest.mark.parametrize("dotted", ["./a.txt", "%2e/a.txt", "a/./b.txt", "./a/b.txt"])
def test_a_dot_segment_names_the_folder_it_is_in(client, folder, artifact_root, dotted):
    plain = dotted.replace("%2e/", "").replace("./", "")
    assert put(client, f"{folder}/{dotted}", b"dot").status_code == 200
    assert stored_files(artifact_root) == [f"{folder}/{plain}"]
    assert b"".join(client.get(f"{STORE}/{folder}/{dotted}").streaming_content) == b"dot"
    listing = client.get(STORE, {"path": f"{folder}/."}).json()["files"]
    assert [file["path"] for file in listing] == [plain.split("/")[0]]
    assert client.delete(f"{STORE}/{folder}/{dotted}").json() == {}
    assert stored_files(artifact_root) == []


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "C:/x.txt", "escape.txt", "0/escape.txt", "notanid/{run}/artifacts/x", "{exp}/{run}/params/x"],
)
def test_only_a_runs_or_a_models_artifact_folder_may_be_written(client, run, artifact_root, path):
    path = path.format(exp=run.experiment_id, run=run.run_id)
    assert put(client, path).status_code in (400, 404)
    assert stored_files(artifact_root) == []


def test_a_run_that_does_not_exist_or_is_in_another_experiment_is_404(client, run, artifact_root):
    assert_refused(put(client, f"{run.experiment_id}/{'f' * 32}/artifacts/x"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_refused(put(client, f"{run.experiment_id + 1}/{run.run_id}/artifacts/x"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert stored_files(artifact_root) == []


def test_a_logged_models_folder_takes_files_when_the_model_exists(client, experiment, artifact_root):
    model = logged_models.logged_model_create(experiment=experiment, name="model")
    folder = f"{experiment.id}/models/{model.model_id}/artifacts"
    assert put(client, f"{folder}/MLmodel", b"flavors: {}").status_code == 200
    assert stored_files(artifact_root) == [f"{folder}/MLmodel"]
    assert_refused(put(client, f"{experiment.id}/models/not-an-id/artifacts/MLmodel"), 400, "INVALID_PARAMETER_VALUE")
    # A well-formed id of no model, or of a model in another experiment, has no folder.
    assert_refused(put(client, f"{experiment.id}/models/{MODEL_ID}/artifacts/MLmodel"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_refused(put(client, f"999999/models/{model.model_id}/artifacts/MLmodel"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert stored_files(artifact_root) == [f"{folder}/MLmodel"]


def test_an_announced_size_over_the_limit_is_refused_before_reading(client, folder, settings, artifact_root):
    settings.RUNTREE_MAX_ARTIFACT_BYTES = 10
    response = put(client, f"{folder}/big.bin", b"x" * 11)
    assert_refused(response, 413, "RESOURCE_LIMIT_EXCEEDED", "RUNTREE_MAX_ARTIFACT_BYTES")
    assert stored_files(artifact_root) == []
    assert put(client, f"{folder}/fits.bin", b"x" * 10).status_code == 200


def test_a_chunked_body_is_counted_while_it_streams(client, folder, settings, artifact_root):
    settings.RUNTREE_MAX_ARTIFACT_BYTES = 3 * 1024 * 1024
    chunked = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
    big = put(client, f"{folder}/big.bin", **chunked, **{"wsgi.input": io.BytesIO(b"x" * (3 * 1024 * 1024 + 1))})
    assert_refused(big, 413, "RESOURCE_LIMIT_EXCEEDED")
    assert stored_files(artifact_root) == []
    fits = put(client, f"{folder}/fits.bin", **chunked, **{"wsgi.input": io.BytesIO(b"y" * 2_500_000)})
    assert fits.status_code == 200
    assert (artifact_root / folder / "fits.bin").stat().st_size == 2_500_000


def test_a_body_cut_short_stores_nothing(client, folder, artifact_root):
    cut = {"CONTENT_LENGTH": "1000", "wsgi.input": io.BytesIO(b"z" * 400)}
    assert_refused(
        put(client, f"{folder}/cut.bin", **cut), 400, "INVALID_PARAMETER_VALUE", "after 400 of its 1000 bytes"
    )
    assert stored_files(artifact_root) == []


def test_a_failed_upload_keeps_the_file_it_would_have_replaced(client, folder, artifact_root):
    put(client, f"{folder}/model.bin", b"good")
    put(client, f"{folder}/model.bin", **{"CONTENT_LENGTH": "1000", "wsgi.input": io.BytesIO(b"bad")})
    assert (artifact_root / folder / "model.bin").read_bytes() == b"good"


def test_an_upload_above_djangos_request_limit_streams_through(client, folder, settings, artifact_root):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    assert put(client, f"{folder}/large.bin", b"L" * 100_000).status_code == 200
    assert (artifact_root / folder / "large.bin").stat().st_size == 100_000


def test_a_file_cannot_replace_a_folder_nor_nest_under_a_file(client, folder, artifact_root):
    put(client, f"{folder}/a/b.txt")
    assert_refused(put(client, f"{folder}/a"), 400, "INVALID_PARAMETER_VALUE")
    assert_refused(put(client, f"{folder}/a/b.txt/c"), 400, "INVALID_PARAMETER_VALUE")
    assert_refused(client.get(f"{STORE}/{folder}/a"), 400, "INVALID_PARAMETER_VALUE", "directory")
    assert stored_files(artifact_root) == [f"{folder}/a/b.txt"]


def test_multipart_upload_is_declined_with_mlflows_message(client, folder):
    response = client.post(f"/api/2.0/mlflow-artifacts/mpu/create/{folder}/x.bin", {}, content_type="application/json")
    assert_refused(
        response, 501, "NOT_IMPLEMENTED", "Multipart upload is not supported for the current artifact repository"
    )


def test_a_wrong_method_is_405(client, folder):
    response = client.post(f"{STORE}/{folder}/x.bin", b"", content_type="application/octet-stream")
    assert_refused(response, 405, "ENDPOINT_NOT_FOUND", "not POST")


def test_listing_by_run_and_the_ui_download(client, run, folder):
    put(client, f"{folder}/d/e.txt", b"hey")
    listing = client.get("/api/2.0/mlflow/artifacts/list", {"run_id": run.run_id, "path": "d"}).json()
    assert listing == {"root_uri": run.artifact_uri, "files": [{"path": "d/e.txt", "is_dir": False, "file_size": 3}]}
    assert_refused(
        client.get("/api/2.0/mlflow/artifacts/list", {"run_id": run.run_id, "path": "../x"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    download = client.get("/get-artifact", {"run_id": run.run_id, "path": "d/e.txt"})
    assert b"".join(download.streaming_content) == b"hey"
    assert download["Content-Disposition"].startswith("attachment")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.text(alphabet=st.sampled_from(list("ab./\\%2e5c0f#:~ \x00")), max_size=24))
def test_any_path_is_stored_inside_its_run_or_refused(client, folder, artifact_root, tail):
    response = put(client, f"{folder}/{quote(tail, safe='/%')}", b"x")
    assert response.status_code in (200, 400, 404), response.content
    assert response["Content-Type"] == "application/json"
    run_folder = (artifact_root / folder).resolve()
    for stored in artifact_root.rglob("*"):
        if stored.is_file():
            assert stored.resolve().is_relative_to(run_folder), stored
