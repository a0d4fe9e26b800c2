"""Artifacts through the real mlflow client against a live Runtree: what a training script logs
comes back byte for byte, lists with its sizes and folders, and a refused upload stores nothing."""

import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import matplotlib
import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from django.core.signals import request_started
from mlflow import MlflowClient
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.utils import server_info

matplotlib.use("Agg")  # no display: render to files
from matplotlib import pyplot  # noqa: E402 (after choosing the backend)

pytestmark = pytest.mark.usefixtures("tracking_uri")


def stored_files(root: Path) -> list[str]:
    """Every file under the local storage root (uploads in flight included: none may stay)."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.fixture(params=["local", "s3"])
def stored(request, artifact_root):
    """The artifact store, on the embedded default and on S3 (moto): a function that lists every
    name stored."""
    if request.param == "local":
        return lambda: stored_files(artifact_root)
    bucket = request.getfixturevalue("s3_artifact_bucket")
    return lambda: sorted(item.key for item in bucket.objects.all())


def artifact_repository(artifact_uri: str):
    """The client's repository for a run's `mlflow-artifacts:` URI: the proxied HTTP store."""
    return get_artifact_repository(artifact_uri, tracking_uri=mlflow.get_tracking_uri())


def download(run_id: str, path: str, tmp_path: Path) -> bytes:
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(tmp_path / "dl"))
    return Path(local).read_bytes()


def test_logged_files_round_trip_byte_for_byte_and_list_with_sizes_and_folders(tmp_path, stored):
    payload = os.urandom(300_000) + b"\x00\xff end"
    (tmp_path / "weights.bin").write_bytes(payload)
    (tmp_path / "notes.txt").write_text("first line\nsecond line\n")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "weights.bin"), artifact_path="checkpoints/epoch_1")
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_dict({"lr": 0.1, "layers": [64, 32]}, "config/params.json")
        mlflow.log_dict({"lr": 0.1}, "config/params.yaml")
        mlflow.log_text("héllo wörld\n", "readme.txt")

    run_id = run.info.run_id
    assert download(run_id, "checkpoints/epoch_1/weights.bin", tmp_path) == payload
    assert download(run_id, "notes.txt", tmp_path) == b"first line\nsecond line\n"
    assert json.loads(download(run_id, "config/params.json", tmp_path)) == {"lr": 0.1, "layers": [64, 32]}
    assert yaml.safe_load(download(run_id, "config/params.yaml", tmp_path)) == {"lr": 0.1}
    assert download(run_id, "readme.txt", tmp_path) == "héllo wörld\n".encode()

    top = {info.path: (info.is_dir, info.file_size) for info in MlflowClient().list_artifacts(run_id)}
    assert top == {
        "checkpoints": (True, None),
        "config": (True, None),
        "notes.txt": (False, 23),
        "readme.txt": (False, len("héllo wörld\n".encode())),
    }
    # MlflowClient.list_artifacts(run_id, folder) also asks for the run's logged models (MLflow 3's
    # logged-models/search, not part of the artifact store), so the folders are listed through
    # the run's artifact repository, which is what that call lists files with.
    repository = artifact_repository(run.info.artifact_uri)
    nested = repository.list_artifacts("checkpoints/epoch_1")
    assert [(info.path, info.is_dir, info.file_size) for info in nested] == [
        ("checkpoints/epoch_1/weights.bin", False, len(payload))
    ]
    assert [info.path for info in repository.list_artifacts("config")] == ["config/params.json", "config/params.yaml"]
    assert repository.list_artifacts("notes.txt") == []  # a file lists nothing
    assert repository.list_artifacts("nothing/here") == []
    # A whole folder comes back too.
    folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="config", dst_path=str(tmp_path / "all"))
    assert sorted(os.listdir(folder)) == ["params.json", "params.yaml"]
    assert f"0/{run_id}/artifacts/checkpoints/epoch_1/weights.bin" in stored()


def test_the_path_dot_downloads_and_lists_the_whole_run(tmp_path, stored):
    # `download_artifacts(run_id, ".")` is a common way to fetch everything a run logged.
    with mlflow.start_run() as run:
        mlflow.log_text("top", "r.txt")
        mlflow.log_dict({"lr": 0.1}, "cfg/params.json")
    run_id = run.info.run_id

    everything = Path(MlflowClient().download_artifacts(run_id, ".", str(tmp_path / "all")))
    assert sorted(str(path.relative_to(everything)) for path in everything.rglob("*") if path.is_file()) == [
        "cfg/params.json",
        "r.txt",
    ]
    listed = MlflowClient().list_artifacts(run_id, ".")
    assert sorted((info.path, info.is_dir) for info in listed) == [("./cfg", True), ("./r.txt", False)]
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/./r.txt") == "top"


def test_a_figure_and_an_image_round_trip(tmp_path, stored):
    figure, axes = pyplot.subplots()
    axes.plot([1, 2, 3], [3, 1, 2])
    image = (np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5).astype(np.uint8)
    with mlflow.start_run() as run:
        mlflow.log_figure(figure, "plots/curve.png")
        mlflow.log_image(image, "images/tile.png")
    pyplot.close(figure)

    curve = download(run.info.run_id, "plots/curve.png", tmp_path)
    tile = download(run.info.run_id, "images/tile.png", tmp_path)
    assert curve.startswith(b"\x89PNG") and len(curve) > 1000
    from PIL import Image  # noqa: PLC0415 (Pillow comes with matplotlib; only this test reads PNGs)

    (tmp_path / "tile.png").write_bytes(tile)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "tile.png")), image)


@pytest.fixture
def paths_requested():
    """The path of every request the live server receives while the test runs."""
    paths = []

    def record(sender, environ, **kwargs):
        paths.append(environ["PATH_INFO"])

    request_started.connect(record)
    yield paths
    request_started.disconnect(record)


def test_a_run_of_artifact_calls_asks_for_the_server_info_at_most_once(tmp_path, artifact_root, paths_requested):
    server_info._clear_server_info_cache()  # the client's 60 s cache: start without an earlier test's answer
    with mlflow.start_run() as run:
        for epoch in range(3):
            mlflow.log_text(f"epoch {epoch}", f"logs/epoch_{epoch}.txt")
    for epoch in range(3):
        assert download(run.info.run_id, f"logs/epoch_{epoch}.txt", tmp_path) == f"epoch {epoch}".encode()
    # A 404 is never cached, so before Runtree served it the client asked before every download.
    assert paths_requested.count("/api/3.0/mlflow/server-info") <= 1


def test_an_artifact_logged_twice_is_replaced_and_a_deleted_one_is_gone(tmp_path, stored):
    with mlflow.start_run() as run:
        mlflow.log_text("one", "out.txt")
        mlflow.log_text("two, longer", "out.txt")
        mlflow.log_text("kept", "keep/me.txt")
    run_id = run.info.run_id
    assert download(run_id, "out.txt", tmp_path) == b"two, longer"

    repository = artifact_repository(run.info.artifact_uri)
    repository.delete_artifacts("out.txt")
    assert [info.path for info in MlflowClient().list_artifacts(run_id)] == ["keep"]
    repository.delete_artifacts()  # the whole run's artifacts
    assert MlflowClient().list_artifacts(run_id) == []
    assert stored() == []


def test_the_tracking_apis_listing_by_run_and_the_ui_download(live_server, stored):
    with mlflow.start_run() as run:
        mlflow.log_text("a,b\n1,2\n", "data/table.csv")
    run_id = run.info.run_id

    listing = requests.get(f"{live_server.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}).json()
    assert listing == {"root_uri": run.info.artifact_uri, "files": [{"path": "data", "is_dir": True}]}
    inside = requests.get(
        f"{live_server.url}/ajax-api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "data"}
    ).json()
    assert inside["files"] == [{"path": "data/table.csv", "is_dir": False, "file_size": 8}]

    response = requests.get(f"{live_server.url}/get-artifact", params={"run_id": run_id, "path": "data/table.csv"})
    assert response.content == b"a,b\n1,2\n"
    assert response.headers["Content-Disposition"] == 'attachment; filename="table.csv"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_an_upload_over_the_limit_is_refused_with_413_and_stores_nothing(tmp_path, settings, stored):
    settings.RUNTREE_MAX_ARTIFACT_BYTES = 1000
    (tmp_path / "big.bin").write_bytes(b"x" * 1001)
    (tmp_path / "small.bin").write_bytes(b"x" * 1000)
    with mlflow.start_run() as run:
        # The client raises requests' HTTPError with the server's JSON in its text.
        with pytest.raises(requests.HTTPError, match=r"413 .*limit of 1000 bytes \(RUNTREE_MAX_ARTIFACT_BYTES\)"):
            mlflow.log_artifact(str(tmp_path / "big.bin"))
        mlflow.log_artifact(str(tmp_path / "small.bin"))
    assert stored() == [f"0/{run.info.run_id}/artifacts/small.bin"]


def test_a_client_gone_mid_upload_leaves_no_file(live_server, artifact_root):
    with mlflow.start_run() as run:
        pass
    target = f"/api/2.0/mlflow-artifacts/artifacts/0/{run.info.run_id}/artifacts/half.bin"
    address = urlsplit(live_server.url)
    with socket.create_connection((address.hostname, address.port)) as connection:
        connection.sendall(
            f"PUT {target} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Length: 10000000\r\n\r\n".encode()
            + b"y" * 1_000_000
        )
    # The server reads on, finds the body cut short, and answers into the void. It has begun
    # once its folder for arriving uploads exists; it has finished once that folder is empty.
    incoming = artifact_root / ".incoming"
    deadline = time.monotonic() + 20
    while not (incoming.is_dir() and not any(incoming.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert stored_files(artifact_root) == []
    assert requests.get(live_server.url + target).status_code == 404


def test_multipart_upload_is_declined_as_mlflow_declines_it_so_the_client_sends_one_put(tmp_path, monkeypatch, stored):
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", "10")
    (tmp_path / "model.bin").write_bytes(b"z" * 5000)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "model.bin"))
    assert download(run.info.run_id, "model.bin", tmp_path) == b"z" * 5000
    assert stored() == [f"0/{run.info.run_id}/artifacts/model.bin"]


def test_a_path_that_leaves_the_run_is_refused_and_nothing_is_written(live_server, stored):
    with mlflow.start_run() as run:
        pass
    folder = f"{live_server.url}/api/2.0/mlflow-artifacts/artifacts/0/{run.info.run_id}/artifacts"
    # Sent as raw bytes on the wire: requests would resolve a literal "../" before sending.
    for bad in ("%2e%2e/%2e%2e/escape.txt", "..%2f..%2fescape.txt", "a%5c..%5cescape.txt", "a%00.txt", "a//b.txt"):
        response = requests.put(f"{folder}/{bad}", data=b"payload")
        assert response.status_code == 400, bad
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert stored() == []


def test_sklearn_autolog_keeps_its_training_metrics_and_estimator_html(tmp_path, stored):
    from sklearn.datasets import load_iris  # noqa: PLC0415 (scikit-learn is slow to import; one test uses it)
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    features, labels = load_iris(return_X_y=True)
    # Models are logged as MLflow 3 logged models (the models helper's endpoints); this test
    # checks what the artifact store guarantees: the files autolog uploads, and the metrics it
    # logs after them.
    mlflow.sklearn.autolog(log_models=False, log_datasets=False)
    try:
        with mlflow.start_run() as run:
            LogisticRegression(max_iter=300).fit(features, labels)
    finally:
        mlflow.sklearn.autolog(disable=True)

    metrics = MlflowClient().get_run(run.info.run_id).data.metrics
    assert {"training_accuracy_score", "training_f1_score", "training_log_loss", "training_score"} <= set(metrics)
    assert metrics["training_accuracy_score"] > 0.9
    html = download(run.info.run_id, "estimator.html", tmp_path).decode()
    assert "LogisticRegression" in html
    assert f"0/{run.info.run_id}/artifacts/estimator.html" in stored()


def test_a_missing_artifact_is_a_404_in_json(live_server, stored):
    with mlflow.start_run() as run:
        mlflow.log_text("here", "here.txt")
    folder = f"{live_server.url}/api/2.0/mlflow-artifacts/artifacts/0/{run.info.run_id}/artifacts"
    response = requests.get(f"{folder}/not-here.txt")
    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert requests.get(f"{folder}/here.txt").content == b"here"


def test_a_logged_table_previews_as_rows_and_columns_on_the_run_page(client, stored):
    frame = pd.DataFrame({"question": ["<b>2+2?</b>", "capital of France?"], "score": [1.0, 0.5]})
    with mlflow.start_run() as run:
        mlflow.log_table(frame, artifact_file="eval/results.json")

    response = client.get(f"/runs/{run.info.run_id}/artifacts/preview/", {"path": "eval/results.json"})

    table = response.context["preview"].table
    assert table.columns == ["question", "score"]
    assert table.rows == [["<b>2+2?</b>", "1.0"], ["capital of France?", "0.5"]]
    assert "&lt;b&gt;2+2?&lt;/b&gt;" in response.content.decode()


@pytest.mark.parametrize("location", ["mlflow-artifacts:/team-a", "mlflow-artifacts:/teams/vision/"])
def test_an_experiment_with_its_own_proxied_location_takes_files_and_models(client, tmp_path, stored, location):
    from sklearn.linear_model import LinearRegression  # noqa: PLC0415 (scikit-learn is slow to import)

    experiment_id = mlflow.create_experiment(f"own location {location}", artifact_location=location)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_text("hello", "notes/hello.txt")
        model = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
        info = mlflow.sklearn.log_model(model, name="regressor")
    run_id = run.info.run_id
    # The client writes under the experiment's location, as `mlflow server` takes it.
    assert run.info.artifact_uri == f"{location.rstrip('/')}/{run_id}/artifacts"

    assert download(run_id, "notes/hello.txt", tmp_path) == b"hello"
    assert [item.path for item in MlflowClient().list_artifacts(run_id, "notes")] == ["notes/hello.txt"]
    assert mlflow.sklearn.load_model(info.model_uri).predict([[3.0]])[0] == pytest.approx(7.0)
    # Stored under the server's own names, so the run page lists and previews them as any run's.
    assert f"{experiment_id}/{run_id}/artifacts/notes/hello.txt" in stored()
    page = client.get(f"/runs/{run_id}/artifacts/preview/", {"path": "notes/hello.txt"})
    assert page.status_code == 200 and "hello" in page.content.decode()


def test_a_path_under_another_runs_location_is_refused(live_server, stored):
    with mlflow.start_run() as run:
        mlflow.log_text("mine", "mine.txt")
    # The run's folder under a location that is not its experiment's: nothing there is its.
    url = f"{live_server.url}/api/2.0/mlflow-artifacts/artifacts/team-b/{run.info.run_id}/artifacts/x.txt"
    response = requests.put(url, data=b"intruder")
    assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert [name.rsplit("/", 1)[-1] for name in stored()] == ["mine.txt"]
