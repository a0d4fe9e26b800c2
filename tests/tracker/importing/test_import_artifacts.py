"""`import_mlflow --with-artifacts`: the files of each imported run and logged model come along,
byte for byte, from an mlruns folder (moved, too) and from a tracking server's proxied artifact
store, and the run's artifact URI (the model's artifact location) then points at Runtree's store."""

import io
import json
import os
import signal
import subprocess
import sys

import pytest
from django.core.management import call_command

from tests.tracker.importing.test_import_mlflow import free_port, wait_for_health
from tracker.models import LoggedModel, Run

pytestmark = pytest.mark.django_db

WEIGHTS = os.urandom(50_000)


def log_runs(client, scratch) -> dict[str, str]:
    """Two runs with files in folders; returns run name -> run id."""
    experiment = client.create_experiment("with files")
    ids = {}
    for name in ("first", "second"):
        run = client.create_run(experiment, run_name=name)
        client.log_text(run.info.run_id, f"notes of {name}\n", "notes.txt")
        client.log_dict(run.info.run_id, {"name": name}, "config/params.json")
        ids[name] = run.info.run_id
    weights = scratch / f"weights-{ids['first']}.bin"
    weights.write_bytes(WEIGHTS)
    client.log_artifact(ids["first"], str(weights), "model/checkpoints")
    # An MLflow 3 logged model: its files live apart from the run's (models/<model_id>/artifacts).
    model = client.create_logged_model(experiment, name="net", source_run_id=ids["first"])
    files = scratch / f"model-{model.model_id}"
    files.mkdir()
    (files / "MLmodel").write_text(f"artifact_path: net\nmodel_id: {model.model_id}\n")
    (files / "data").mkdir()
    (files / "data" / "model.bin").write_bytes(WEIGHTS)
    client.log_model_artifacts(model.model_id, str(files))
    client.finalize_logged_model(model.model_id, "READY")
    ids["net"] = model.model_id
    return ids


def import_with_artifacts(source: str) -> str:
    out = io.StringIO()
    call_command("import_mlflow", source, "--with-artifacts", stdout=out, verbosity=0)
    return out.getvalue()


def assert_files_arrived(ids: dict[str, str], artifact_root):
    ids = dict(ids)
    model = LoggedModel.objects.get(model_id=ids.pop("net"))
    assert model.artifact_location == f"mlflow-artifacts:/{model.experiment_id}/models/{model.model_id}/artifacts"
    folder = artifact_root / str(model.experiment_id) / "models" / model.model_id / "artifacts"
    assert (folder / "MLmodel").read_text() == f"artifact_path: net\nmodel_id: {model.model_id}\n"
    assert (folder / "data" / "model.bin").read_bytes() == WEIGHTS
    for name, run_id in ids.items():
        run = Run.objects.get(run_id=run_id)
        assert run.artifact_uri == f"mlflow-artifacts:/{run.experiment_id}/{run_id}/artifacts"
        folder = artifact_root / str(run.experiment_id) / run_id / "artifacts"
        assert (folder / "notes.txt").read_text() == f"notes of {name}\n"
        assert json.loads((folder / "config" / "params.json").read_text()) == {"name": name}
    first = Run.objects.get(run_id=ids["first"])
    weights = artifact_root / str(first.experiment_id) / first.run_id / "artifacts" / "model" / "checkpoints"
    assert (weights / f"weights-{first.run_id}.bin").read_bytes() == WEIGHTS


@pytest.fixture
def mlruns(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    folder = tmp_path / "mlruns"
    return folder, log_runs(MlflowClient(tracking_uri=folder.as_uri()), tmp_path)


def test_an_mlruns_folders_files_arrive_and_the_runs_point_here(mlruns, artifact_root):
    folder, ids = mlruns
    output = import_with_artifacts(str(folder))
    assert "Artifacts: 7 files" in output and "of 2 runs and 1 logged models copied" in output
    assert_files_arrived(ids, artifact_root)
    # Again: the same files, nothing new, nothing lost.
    import_with_artifacts(str(folder))
    assert_files_arrived(ids, artifact_root)


def test_a_moved_mlruns_folder_still_gives_its_files(mlruns, artifact_root, tmp_path):
    folder, ids = mlruns
    moved = folder.rename(tmp_path / "moved-mlruns")
    output = import_with_artifacts(str(moved))
    assert "could not be copied" not in output
    assert_files_arrived(ids, artifact_root)


def test_a_model_whose_files_cannot_be_read_is_named_and_the_rest_still_arrive(mlruns, artifact_root):
    folder, ids = mlruns
    meta = next(folder.glob(f"*/models/{ids['net']}/meta.yaml"))
    recorded = meta.read_text()
    location = next(line for line in recorded.splitlines() if line.startswith("artifact_location:"))
    meta.write_text(recorded.replace(location, "artifact_location: nowhere://store/net"))

    output = import_with_artifacts(str(folder))

    assert f"Logged model {ids['net']}: its files could not be copied (" in output
    assert "Artifacts: 5 files" in output and "of 2 runs and 0 logged models copied" in output
    assert LoggedModel.objects.get(model_id=ids["net"]).artifact_location == "nowhere://store/net"
    first = Run.objects.get(run_id=ids["first"])
    assert (artifact_root / str(first.experiment_id) / first.run_id / "artifacts" / "notes.txt").is_file()


def test_without_the_flag_no_file_is_copied(mlruns, artifact_root):
    folder, ids = mlruns
    call_command("import_mlflow", str(folder), stdout=io.StringIO(), verbosity=0)
    assert not any(path.is_file() for path in artifact_root.rglob("*"))
    assert Run.objects.get(run_id=ids["first"]).artifact_uri.startswith("file:")
    assert LoggedModel.objects.get(model_id=ids["net"]).artifact_location.startswith("file:")


@pytest.fixture
def proxying_server(tmp_path):
    """`mlflow server --serve-artifacts`: its runs' artifact URIs are mlflow-artifacts: URIs."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--serve-artifacts"]
    command += ["--artifacts-destination", str(tmp_path / "store")]
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server, tmp_path / "server.log")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_a_tracking_servers_proxied_artifacts_arrive(proxying_server, artifact_root, tmp_path):
    from mlflow.tracking import MlflowClient

    ids = log_runs(MlflowClient(tracking_uri=proxying_server), tmp_path)
    assert (
        MlflowClient(tracking_uri=proxying_server)
        .get_run(ids["first"])
        .info.artifact_uri.startswith("mlflow-artifacts:")
    )
    output = import_with_artifacts(proxying_server)
    assert "Artifacts: 7 files" in output
    assert_files_arrived(ids, artifact_root)


def test_a_servers_database_gives_its_proxied_artifacts_from_the_folder_named(proxying_server, artifact_root, tmp_path):
    from mlflow.tracking import MlflowClient

    ids = log_runs(MlflowClient(tracking_uri=proxying_server), tmp_path)
    database = f"sqlite:///{tmp_path / 'mlflow.db'}"  # the server's own store, read without it
    out = io.StringIO()
    call_command(
        "import_mlflow",
        database,
        "--with-artifacts",
        "--artifacts-destination",
        str(tmp_path / "store"),  # what the server was started with
        stdout=out,
        verbosity=0,
    )
    output = out.getvalue()
    assert "Artifacts: 7 files" in output and "of 2 runs and 1 logged models copied" in output
    assert "could not be copied" not in output
    assert_files_arrived(ids, artifact_root)


def test_without_the_folder_a_servers_database_says_once_where_its_artifacts_are(
    proxying_server, artifact_root, tmp_path
):
    from mlflow.tracking import MlflowClient

    ids = log_runs(MlflowClient(tracking_uri=proxying_server), tmp_path)
    output = import_with_artifacts(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert "could not be copied" not in output
    assert output.count("behind a tracking server") == 1
    assert (
        "The artifacts of 2 runs and the files of 1 logged models were not copied: they live behind a "
        "tracking server (their URIs are mlflow-artifacts:/...), which a database or folder import cannot read. "
        "Run the import again with --artifacts-destination FOLDER, the folder that server was started with as "
        "--artifacts-destination, or import from the running server: import_mlflow http://host:5000 --with-artifacts."
    ) in output
    # Left as they were, for a later import to copy.
    assert Run.objects.get(run_id=ids["first"]).artifact_uri.startswith("mlflow-artifacts:/")
    assert not any(path.is_file() for path in artifact_root.rglob("*"))
