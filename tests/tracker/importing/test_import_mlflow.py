"""`manage.py import_mlflow`: MLflow history in, from real stores that the mlflow package writes.

Three sources hold the same history (a file store, a SQLite store, a live `mlflow server`), built
once per module. Each import is checked field by field against what mlflow's own client reads
from the source. The writer's corner cases (order of arrival, re-imports, refusals) are driven
with the importer's dataclasses directly.
"""

import importlib.abc
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow.data
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tracker import importing, services
from tracker.constants import PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG
from tracker.errors import InvalidParameterValue
from tracker.importing import SourceError, SourceExperiment, SourceLoggedModel, SourceRun
from tracker.importing.client import ClientSource
from tracker.models import (
    DELETED,
    Dataset,
    Experiment,
    ExperimentTag,
    LatestMetric,
    LoggedModel,
    LoggedModelMetric,
    LoggedModelParam,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunDatasetInput,
    RunModelInput,
    RunModelOutput,
    RunSummary,
    RunTag,
    path_ids,
    path_segment,
)
from tracker.services import MetricInput
from tracker.services.logged_models import ModelOutput
from tracker.services.purge import deleted_runs_purge
from tracker.values import now_ms

pytestmark = pytest.mark.django_db

# Not in any source: the run that names it as parent stays a root marked "parent missing".
ABSENT_PARENT = "f" * 32
# MLflow's SQL store keeps ±inf as ±max float; the import gives the infinity back.
SQL_STORE_INFINITY = sys.float_info.max


# --- the sources -------------------------------------------------------------------------------


def populate(client) -> None:
    """The history every source holds: a three-level tree whose child is created before its
    parent, deleted runs, a deleted experiment, NaN and ±inf in histories, a long param value,
    datasets, and logged models (one deleted) that runs produced, used and logged metrics for."""
    from mlflow.entities import Metric as MlflowMetric
    from mlflow.entities import Param as MlflowParam

    sweep = client.create_experiment("sweep", tags={"team": "vision", "runtree.goal.loss": "max"})
    # Created first, attached to its parent afterwards: the source lists it before the parent.
    child = client.create_run(sweep, run_name="child", tags={"mlflow.user": "ann"}, start_time=1_000)
    root = client.create_run(sweep, run_name="root", tags={"mlflow.user": "ann", "stage": "a"}, start_time=2_000)
    client.set_tag(child.info.run_id, PARENT_RUN_ID_TAG, root.info.run_id)
    grandchild = client.create_run(
        sweep, run_name="grandchild", tags={PARENT_RUN_ID_TAG: child.info.run_id}, start_time=3_000
    )
    sibling = client.create_run(sweep, run_name="sibling", tags={PARENT_RUN_ID_TAG: root.info.run_id}, start_time=4_000)
    orphan = client.create_run(sweep, run_name="orphan", tags={PARENT_RUN_ID_TAG: ABSENT_PARENT}, start_time=5_000)

    values = [0.9, math.nan, math.inf, -math.inf, 0.25]
    for run in (root, child, grandchild):
        client.log_batch(
            run.info.run_id,
            metrics=[MlflowMetric("loss", value, 10_000 + step, step) for step, value in enumerate(values)]
            + [MlflowMetric("acc", 0.5, 10_000, 0), MlflowMetric("acc", 0.7, 10_005, 0)],
            params=[MlflowParam("lr", "0.01"), MlflowParam("notes", "long " * 1200)],
        )
    client.set_terminated(root.info.run_id, "FINISHED", end_time=20_000)
    client.set_terminated(child.info.run_id, "KILLED", end_time=19_000)
    client.set_terminated(grandchild.info.run_id, "FAILED", end_time=18_000)
    client.set_terminated(orphan.info.run_id, "FINISHED", end_time=17_000)
    client.delete_run(sibling.info.run_id)

    # Datasets logged as inputs: two for the root (one without a context), the shared one for the child.
    from mlflow.entities import DatasetInput, InputTag

    frame = pd.DataFrame({"feature": [0.1, 0.2, 0.3], "label": [0, 1, 0]})
    train = mlflow.data.from_pandas(frame, source="s3://bucket/train.csv", name="train", targets="label")
    test = mlflow.data.from_pandas(frame.head(2), name="test")
    context = "mlflow.data.context"
    client.log_inputs(
        root.info.run_id,
        datasets=[
            DatasetInput(train._to_mlflow_entity(), tags=[InputTag(context, "training")]),
            DatasetInput(test._to_mlflow_entity(), tags=[]),
        ],
    )
    child_input = DatasetInput(train._to_mlflow_entity(), tags=[InputTag(context, "fine-tuning")])
    client.log_inputs(child.info.run_id, datasets=[child_input])

    # Logged models (MLflow 3): the root produced "net" at step 2 and logged its metrics on the
    # test set (the newest a NaN) and on none (an infinity); the child used it and logged one on
    # the training set. "draft" failed, with no run; "gone", the grandchild's, was deleted.
    from mlflow.entities import LoggedModelInput, LoggedModelOutput

    net = client.create_logged_model(
        sweep,
        name="net",
        source_run_id=root.info.run_id,
        params={"depth": "3", "notes": "long " * 1200},
        tags={"stage": "candidate"},
        model_type="classifier",
    )
    on_test = {"model_id": net.model_id, "dataset_name": "test", "dataset_digest": test.digest}
    client.log_batch(
        root.info.run_id,
        metrics=[
            MlflowMetric("val_loss", 0.4, 12_000, 1, **on_test),
            MlflowMetric("val_loss", math.nan, 12_001, 2, **on_test),
            MlflowMetric("val_loss", math.inf, 12_002, 2, model_id=net.model_id),
        ],
    )
    client.log_metric(
        child.info.run_id,
        "val_acc",
        0.8,
        timestamp=12_100,
        step=0,
        model_id=net.model_id,
        dataset_name="train",
        dataset_digest=train.digest,
    )
    client.finalize_logged_model(net.model_id, "READY")
    client.log_outputs(root.info.run_id, [LoggedModelOutput(net.model_id, 2)])
    client.log_inputs(child.info.run_id, models=[LoggedModelInput(net.model_id)])
    draft = client.create_logged_model(sweep, name="draft")
    client.finalize_logged_model(draft.model_id, "FAILED")
    gone = client.create_logged_model(sweep, name="gone", source_run_id=grandchild.info.run_id, tags={"k": "v"})
    client.log_outputs(grandchild.info.run_id, [LoggedModelOutput(gone.model_id, 0)])
    client.delete_logged_model(gone.model_id)

    abandoned = client.create_experiment("abandoned")
    lost = client.create_run(abandoned, run_name="lost")
    client.log_metric(lost.info.run_id, "loss", 1.5, timestamp=30_000, step=3)
    client.delete_experiment(abandoned)

    client.create_run("0", run_name="in-default")


@pytest.fixture(scope="module")
def file_store(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("file_store") / "mlruns"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        populate(MlflowClient(tracking_uri=folder.as_uri()))
    return str(folder)


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('sqlite_store') / 'mlflow.db'}"
    populate(MlflowClient(tracking_uri=uri))
    return uri


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("tracking_server")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--default-artifact-root", str(folder)]
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(folder / "server.log", "wb")  # closed at teardown
    # Its own process group: the server forks a uvicorn worker, and teardown stops both.
    server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server, folder / "server.log")
        populate(MlflowClient(tracking_uri=url))
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def wait_for_health(url, server, log_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"mlflow server did not answer /health within {timeout} s:\n{log_path.read_text()[-2000:]}")


@pytest.fixture(params=["file_store", "sqlite_store", "tracking_server"])
def source(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    # Two runs per chunk: parents and children land in different chunks, in either order.
    monkeypatch.setattr(importing.MlflowSource, "chunk_size", 2)
    monkeypatch.setattr(ClientSource, "chunk_size", 2)


def mlflow_client(source, monkeypatch):
    from mlflow.tracking import MlflowClient

    if source.startswith(("http", "sqlite")):
        return MlflowClient(tracking_uri=source)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=f"file://{source}")


def import_mlflow(*args, verbosity=0) -> str:
    from io import StringIO

    out = StringIO()
    call_command("import_mlflow", *args, stdout=out, verbosity=verbosity)
    return out.getvalue()


# --- field by field against what mlflow reads ---------------------------------------------------


def comparable(value: float | None):
    """NaN equal to NaN, and the SQL store's stand-in for infinity read as infinity."""
    if value is None or math.isnan(value):
        return "nan"
    if abs(value) == SQL_STORE_INFINITY:
        return math.copysign(math.inf, value)
    return value


def source_runs(client):
    from mlflow.entities import ViewType

    for experiment in client.search_experiments(view_type=ViewType.ALL):
        for run in client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL):
            yield experiment, run


def assert_runtree_holds_the_source(client):
    from mlflow.entities import ViewType

    for source_experiment in client.search_experiments(view_type=ViewType.ALL):
        experiment = Experiment.objects.get(name=source_experiment.name)
        assert experiment.lifecycle_stage == source_experiment.lifecycle_stage
        assert experiment.tag_dict() == source_experiment.tags
        if experiment.pk != 0:  # Runtree's own Default keeps its own attributes
            assert experiment.artifact_location == source_experiment.artifact_location
            assert experiment.creation_time == source_experiment.creation_time

    seen = 0
    for source_experiment, source in source_runs(client):
        seen += 1
        info = source.info
        run = Run.objects.select_related("experiment").get(run_id=info.run_id)
        assert run.experiment.name == source_experiment.name
        assert (run.name, run.user_id, run.status, run.start_time, run.end_time) == (
            info.run_name,
            info.user_id,
            info.status,
            info.start_time,
            info.end_time,
        )
        assert (run.lifecycle_stage, run.artifact_uri) == (info.lifecycle_stage, info.artifact_uri)
        assert dict(run.params.values_list("key", "value")) == source.data.params
        tags = dict(run.tags.values_list("key", "value"))
        assert {k: v for k, v in tags.items() if k != ROOT_RUN_ID_TAG} == {
            k: v for k, v in source.data.tags.items() if k != ROOT_RUN_ID_TAG
        }
        assert tags[ROOT_RUN_ID_TAG] == Run.objects.get(pk=run.root_pk).run_id
        for key, latest in source.data.metrics.items():
            history = client.get_metric_history(info.run_id, key)
            assert sorted((m.step, m.timestamp, comparable(m.value)) for m in history) == sorted(
                (m.step, m.timestamp, comparable(m.value)) for m in run.metrics.filter(key=key)
            )
            assert comparable(run.latest_metrics.get(key=key).value) == comparable(latest)
        assert set(run.metrics.values_list("key", flat=True)) == set(source.data.metrics)
        assert held_inputs(run) == source_inputs(source)
    assert Run.objects.count() == seen
    assert RunDatasetInput.objects.filter(context__isnull=False).count() == 2  # the filter language's column


def assert_runtree_holds_the_logged_models(client, source: str):
    from mlflow.entities import ViewType

    listed = {}
    for experiment in client.search_experiments(view_type=ViewType.ALL):
        for model in client.search_logged_models(experiment_ids=[experiment.experiment_id]):
            listed[model.model_id] = (experiment.name, model.name)
    assert sorted(name for _, name in listed.values()) == ["draft", "net"]  # the client hides "gone"
    for model_id, (experiment_name, _) in listed.items():
        source_model = client.get_logged_model(model_id)  # as load_model("models:/<model_id>") reads it
        model = LoggedModel.objects.select_related("experiment", "source_run").get(model_id=model_id)
        assert model.experiment.name == experiment_name
        assert (model.name, model.model_type, model.status, model.status_message) == (
            source_model.name,
            source_model.model_type or "",
            str(source_model.status),
            source_model.status_message or "",
        )
        assert (model.lifecycle_stage, model.artifact_location) == ("active", source_model.artifact_location)
        assert (model.creation_time, model.last_updated_time) == (
            source_model.creation_timestamp,
            source_model.last_updated_timestamp,
        )
        assert (model.source_run.run_id if model.source_run else "") == (source_model.source_run_id or "")
        assert dict(model.tags.values_list("key", "value")) == source_model.tags
        assert dict(model.params.values_list("key", "value")) == source_model.params
        assert held_model_metrics(model) == source_model_metrics(source_model)
        assert len(held_model_metrics(model)) == listed_model_point_count(source, model.name)

    # The deleted model: mlflow's client gets it by no id, so it is found through its run's output.
    grandchild = client.get_run(Run.objects.get(name="grandchild").run_id)
    (gone_id,) = {output.model_id for output in grandchild.outputs.model_outputs} - set(listed)
    if source.startswith("http"):
        # A tracking server's REST API hides deleted models: the import cannot see it.
        assert not LoggedModel.objects.filter(model_id=gone_id).exists()
        held = set(listed)
    else:
        gone = LoggedModel.objects.get(model_id=gone_id)
        assert (gone.name, gone.lifecycle_stage, gone.source_run.name) == ("gone", DELETED, "grandchild")
        assert dict(gone.tags.values_list("key", "value")) == {"k": "v"}
        held = {*listed, gone_id}
    assert set(LoggedModel.objects.values_list("model_id", flat=True)) == held

    for _, listed_run in source_runs(client):
        source_run = client.get_run(listed_run.info.run_id)  # MLflow's SQL store lists no model inputs
        run = Run.objects.get(run_id=source_run.info.run_id)
        assert sorted(run.model_outputs.values_list("model__model_id", "step")) == sorted(
            (output.model_id, output.step) for output in source_run.outputs.model_outputs if output.model_id in held
        )
        assert sorted(run.model_inputs.values_list("model__model_id", flat=True)) == sorted(
            given.model_id for given in source_run.inputs.model_inputs
        )
    assert RunModelOutput.objects.count() == len(held) - 1  # each but "draft" was produced by a run
    assert RunModelInput.objects.get().run.name == "child"


def listed_model_point_count(source: str, name: str) -> int:
    if name == "draft":
        return 0
    # mlflow's FileStore gives a model's latest point per key and dataset only (the NaN on the
    # test set, not the 0.4 before it), and so the import reads nothing more from an mlruns folder.
    return 3 if not source.startswith(("http", "sqlite")) else 4


def source_model_metrics(model) -> list[tuple]:
    return sorted(
        (
            point.run_id,
            point.key,
            point.step,
            point.timestamp,
            comparable(point.value),
            point.dataset_name,
            point.dataset_digest,
        )
        for point in model.metrics or []
    )


def held_model_metrics(model) -> list[tuple]:
    return sorted(
        (
            point.run.run_id,
            point.key,
            point.step,
            point.timestamp,
            comparable(point.value),
            point.dataset_name,
            point.dataset_digest,
        )
        for point in model.metrics.select_related("run")
    )


def dataset_rows(inputs) -> list[tuple]:
    """(dataset, its input's tags as (key, value) pairs) for each input, comparable whoever read them."""
    return sorted(
        (dataset.name, dataset.digest, dataset.source_type, dataset.source, dataset.schema or "", dataset.profile or "")
        + (sorted(tags),)
        for dataset, tags in inputs
    )


def source_inputs(source) -> list[tuple]:
    given = source.inputs.dataset_inputs if source.inputs else []
    return dataset_rows((one.dataset, [(tag.key, tag.value) for tag in one.tags]) for one in given)


def held_inputs(run) -> list[tuple]:
    given = run.dataset_inputs.select_related("dataset")
    return dataset_rows((one.dataset, [(tag["key"], tag["value"]) for tag in one.tags]) for one in given)


def assert_trees_follow_the_parent_tags():
    for run in Run.objects.all():
        parent_run_id = RunTag.objects.filter(run=run, key=PARENT_RUN_ID_TAG).values_list("value", flat=True).first()
        assert run.parent_run_id == (parent_run_id or "")
        parent = Run.objects.filter(run_id=parent_run_id, experiment=run.experiment).first()
        assert run.parent == parent
        assert run.parent_missing == (bool(parent_run_id) and parent is None)
        assert run.path == (parent.path if parent else "") + path_segment(run.pk)
        assert run.depth == len(path_ids(run.path)) - 1


def snapshot():
    """Every row the import writes, in full."""
    return {
        model.__name__: list(model.objects.order_by("pk").values_list())
        for model in (
            Experiment,
            ExperimentTag,
            Run,
            Param,
            RunTag,
            Metric,
            LatestMetric,
            RunSummary,
            Dataset,
            RunDatasetInput,
            LoggedModel,
            LoggedModelTag,
            LoggedModelParam,
            LoggedModelMetric,
            RunModelOutput,
            RunModelInput,
        )
    }


class TestImportingARealMlflowSource:
    def test_every_field_arrives_as_mlflow_reads_it(self, source, monkeypatch):
        import_mlflow(source)
        assert_runtree_holds_the_source(mlflow_client(source, monkeypatch))

    def test_logged_models_arrive_as_mlflow_reads_them(self, source, monkeypatch):
        import_mlflow(source)
        assert_runtree_holds_the_logged_models(mlflow_client(source, monkeypatch), source)

    def test_the_tree_is_linked_though_the_child_came_first(self, source):
        import_mlflow(source)
        assert_trees_follow_the_parent_tags()
        grandchild = Run.objects.get(name="grandchild")
        assert [run.name for run in Run.objects.ancestors_of(grandchild)] == ["root", "child"]
        assert grandchild.depth == 2
        assert RunTag.objects.get(run=grandchild, key=ROOT_RUN_ID_TAG).value == Run.objects.get(name="root").run_id

    def test_runs_are_written_oldest_first_so_a_sweep_lies_together(self, source):
        import_mlflow(source)
        sweep = Run.objects.filter(experiment__name="sweep")
        # A source lists runs newest first (a server) or by random id (a database); the rows
        # are written in the order the runs were logged, whatever the source's order.
        by_row = list(sweep.order_by("pk").values_list("start_time", flat=True))
        assert by_row == sorted(by_row) and len(by_row) == 5

    def test_a_run_whose_parent_is_not_in_the_source_is_a_root_marked_parent_missing(self, source):
        import_mlflow(source)
        orphan = Run.objects.get(name="orphan")
        assert orphan.parent is None and orphan.parent_missing and orphan.parent_run_id == ABSENT_PARENT

    def test_deleted_stays_deleted(self, source):
        import_mlflow(source)
        assert Experiment.objects.get(name="abandoned").is_deleted
        assert Run.objects.get(name="sibling").is_deleted
        assert not Run.objects.get(name="root").is_deleted

    def test_a_deleted_run_has_a_deletion_time_so_gc_can_purge_it(self, source):
        started = time.time() * 1000
        import_mlflow(source)
        sibling = Run.objects.get(name="sibling")
        # The source's own where it can say (a database); else the import's, not none at all.
        assert sibling.deleted_time is not None
        if source.startswith("sqlite"):
            assert sibling.deleted_time < started
        assert sibling.run_id in [run.run_id for run in deleted_runs_purge(deleted_before_ms=now_ms() + 1).purged]

    def test_nan_and_infinities_survive_in_the_history(self, source):
        import_mlflow(source)
        history = Run.objects.get(name="root").metrics.filter(key="loss").order_by("step")
        # As stored: NaN as NULL, and real infinities even where the SQL store kept ±max float.
        assert [metric.value for metric in history] == [0.9, None, math.inf, -math.inf, 0.25]

    def test_importing_again_changes_nothing(self, source):
        import_mlflow(source)
        before = snapshot()
        output = import_mlflow(source)
        assert snapshot() == before
        assert "runs: 0 new, 7 already here (0 updated); 0 params, 0 tags, 0 metric points, 0 dataset inputs" in output
        assert "0 dataset inputs, 0 logged models." in output


def test_importing_again_keeps_what_was_edited_here(sqlite_store):
    import_mlflow(sqlite_store)
    sweep = Experiment.objects.get(name="sweep")
    services.experiment_set_tag(experiment=sweep, key="team", value="platform")
    root, orphan = Run.objects.get(name="root"), Run.objects.get(name="orphan")
    services.run_update(run=root, name="renamed here")
    services.run_set_tag(run=root, key="stage", value="b")
    # Ended here, still running in the source (its end_run never came there).
    lost = Run.objects.get(name="in-default")
    assert lost.status == "RUNNING"
    services.run_update(run=lost, status="KILLED", end_time=40_000)
    # Ended there as FINISHED, marked FAILED here.
    services.run_update(run=orphan, status="FAILED", end_time=99_000)
    before = snapshot()

    output = import_mlflow(sqlite_store)

    assert snapshot() == before
    assert "runs: 0 new, 7 already here (0 updated); 0 params, 0 tags, 0 metric points" in output
    assert (Run.objects.get(run_id=root.run_id).name, Run.objects.get(run_id=lost.run_id).status) == (
        "renamed here",
        "KILLED",
    )


def test_the_summary_counts_what_was_imported(sqlite_store, capsys):
    output = import_mlflow(sqlite_store, verbosity=1)
    assert "7/7" in capsys.readouterr().err  # the progress bar
    # 3 experiments (2 new: Default exists); 7 runs; params 2 × 3 runs; metric points 7 × 3 + 1,
    # and the 4 logged for "net"; logged models: "net", "draft" and the deleted "gone".
    assert "3 experiments (2 new); runs: 7 new, 0 already here (0 updated); 6 params" in output
    assert "26 metric points, 3 dataset inputs, 3 logged models." in output


def test_a_tracking_server_older_than_mlflow_3_has_its_runs_imported_without_logged_models(
    tracking_server, monkeypatch
):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ENDPOINT_NOT_FOUND
    from mlflow.tracking import MlflowClient

    def no_such_endpoint(*args, **kwargs):
        # What mlflow's client raises when an MLflow 2 server answers its HTML 404.
        raise MlflowException("API request to endpoint /api/2.0/mlflow/logged-models/search failed", ENDPOINT_NOT_FOUND)

    monkeypatch.setattr(MlflowClient, "search_logged_models", no_such_endpoint)
    output = import_mlflow(tracking_server)
    assert "runs: 7 new" in output and "0 logged models." in output
    assert not LoggedModel.objects.exists() and not RunModelOutput.objects.exists()


def test_only_the_experiments_named_are_imported(sqlite_store):
    import_mlflow(sqlite_store, "--experiment", "abandoned")
    assert list(Experiment.objects.exclude(pk=0).values_list("name", flat=True)) == ["abandoned"]
    assert list(Run.objects.values_list("name", flat=True)) == ["lost"]


def test_an_unknown_experiment_name_imports_nothing(sqlite_store):
    with pytest.raises(CommandError, match="Nothing imported. No experiment named 'nope' in the source"):
        import_mlflow(sqlite_store, "--experiment", "sweep", "--experiment", "nope")
    assert not Run.objects.exists()


def test_parents_are_marked_for_a_summary_refresh(sqlite_store):
    import_mlflow(sqlite_store)
    assert set(Run.objects.filter(summary_stale=True).values_list("name", flat=True)) == {"root", "child"}


# --- bad sources -------------------------------------------------------------------------------


class _NotMlflow(BaseHTTPRequestHandler):
    status = 404

    def do_GET(self):
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html><body>a blog</body></html>")

    def log_message(self, *args):
        pass


class _AWebsite(_NotMlflow):
    status = 200


@pytest.fixture(params=[_NotMlflow, _AWebsite])
def web_server(request):
    server = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def assert_nothing_imported(before):
    assert snapshot() == before
    assert not Run.objects.exists()


class TestABadSourceImportsNothing:
    def test_an_unreachable_server(self):
        before = snapshot()
        started = time.monotonic()
        with pytest.raises(CommandError, match=r"^Nothing imported. Cannot reach the tracking server at http://127"):
            import_mlflow(f"http://127.0.0.1:{free_port()}")
        assert time.monotonic() - started < 10  # no minutes of retries
        assert_nothing_imported(before)

    def test_a_web_server_that_is_not_mlflow(self, web_server):
        before = snapshot()
        with pytest.raises(CommandError, match="is not an MLflow tracking server: GET /api/2.0/mlflow/experiments/"):
            import_mlflow(web_server)
        assert_nothing_imported(before)

    def test_a_folder_that_does_not_exist(self, tmp_path):
        before = snapshot()
        with pytest.raises(CommandError, match="No MLflow file store at .*nope: no such folder"):
            import_mlflow(str(tmp_path / "nope"))
        assert_nothing_imported(before)

    def test_a_folder_that_is_not_an_mlruns_folder(self, tmp_path):
        before = snapshot()
        with pytest.raises(CommandError, match="is not an MLflow file store"):
            import_mlflow(str(tmp_path))
        assert_nothing_imported(before)

    def test_a_database_file_that_does_not_exist_is_not_created(self, tmp_path):
        before = snapshot()
        with pytest.raises(CommandError, match="No MLflow database at .*missing.db: no such file"):
            import_mlflow(f"sqlite:///{tmp_path / 'missing.db'}")
        assert not (tmp_path / "missing.db").exists()
        assert_nothing_imported(before)

    def test_a_file_that_is_not_a_database(self, tmp_path):
        (tmp_path / "notes.txt").write_text("not a database, " * 200)
        before = snapshot()
        with pytest.raises(CommandError, match="Reading sqlite:///.*notes.txt failed: file is not a database"):
            import_mlflow(f"sqlite:///{tmp_path / 'notes.txt'}")
        with pytest.raises(CommandError, match="is a file, not an mlruns folder"):
            import_mlflow(str(tmp_path / "notes.txt"))
        assert_nothing_imported(before)

    def test_a_database_that_is_not_mlflows(self, tmp_path):
        import sqlite3

        with sqlite3.connect(tmp_path / "other.db") as connection:
            connection.execute("create table experiments (id integer)")
        before = snapshot()
        with pytest.raises(
            CommandError, match=r"is not an MLflow tracking database \(missing tables: experiment_tags, runs,"
        ):
            import_mlflow(f"sqlite:///{tmp_path / 'other.db'}")
        assert_nothing_imported(before)

    def test_a_missing_mlflow_package_is_named(self, monkeypatch, tmp_path):
        # As on a server installed from requirements.txt alone: mlflow is a development requirement.
        for name in [name for name in sys.modules if name.split(".")[0] in _NOT_INSTALLED]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setattr(sys, "meta_path", [_NotInstalled(), *sys.meta_path])
        with pytest.raises(CommandError, match="Nothing imported. Reading MLflow sources needs the mlflow package"):
            import_mlflow("http://127.0.0.1:1")
        with pytest.raises(CommandError, match="needs the mlflow package"):
            import_mlflow(f"sqlite:///{tmp_path / 'mlflow.db'}")

    def test_a_value_runtree_refuses_stops_that_experiment_whole(self, monkeypatch):
        good = SourceExperiment(source_id="1", name="good")
        bad = SourceExperiment(source_id="2", name="bad")
        runs = {
            "1": [SourceRun(run_id="a" * 32), SourceRun(run_id="b" * 32)],
            "2": [SourceRun(run_id="c" * 32), SourceRun(run_id="d" * 32, params={"bad key;": "x"})],
        }
        monkeypatch.setattr(importing, "open_source", lambda location: FakeSource([good, bad], runs))
        with pytest.raises(CommandError, match=r"Stopped at experiment 'bad'.*Run d{32}: Invalid param key 'bad key;'"):
            import_mlflow("fake://")
        assert sorted(Run.objects.values_list("run_id", flat=True)) == ["a" * 32, "b" * 32]
        assert not Experiment.objects.filter(name="bad").exists()


_NOT_INSTALLED = ("mlflow", "sqlalchemy")


class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in _NOT_INSTALLED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


class FakeSource(importing.MlflowSource):
    description = "fake://"

    def __init__(self, experiments, runs):
        self._experiments, self._runs = experiments, runs

    def experiments(self):
        return self._experiments

    def run_count(self, experiment):
        return len(self._runs[experiment.source_id])

    def runs(self, experiment):
        for run in self._runs[experiment.source_id]:
            yield [run]


# --- the writer, with the importer's dataclasses -------------------------------------------------


def write(runs_in_chunks, name="sweep", models=()):
    return importing.experiment_import(
        experiment=SourceExperiment(source_id="1", name=name), run_chunks=runs_in_chunks, model_chunks=models
    )


def source_run(run_id, parent=None, **fields):
    tags = {**fields.pop("tags", {}), **({PARENT_RUN_ID_TAG: parent} if parent else {})}
    return SourceRun(run_id=run_id, name=fields.pop("name", run_id[:4]), tags=tags, **fields)


ROOT, CHILD, GRANDCHILD = "1" * 32, "2" * 32, "3" * 32


class TestTheWriter:
    def test_children_that_arrive_before_their_parents_are_attached(self):
        write([[source_run(GRANDCHILD, CHILD)], [source_run(CHILD, ROOT)], [source_run(ROOT)]])
        assert_trees_follow_the_parent_tags()
        grandchild = Run.objects.get(run_id=GRANDCHILD)
        assert [run.run_id for run in Run.objects.ancestors_of(grandchild)] == [ROOT, CHILD]
        assert set(RunTag.objects.filter(key=ROOT_RUN_ID_TAG).values_list("value", flat=True)) == {ROOT}

    def test_a_parent_imported_later_adopts_the_subtree_waiting_for_it(self):
        write([[source_run(CHILD, ROOT), source_run(GRANDCHILD, CHILD)]])
        assert Run.objects.get(run_id=CHILD).parent_missing
        write([[source_run(ROOT)]])
        assert_trees_follow_the_parent_tags()
        assert Run.objects.get(run_id=GRANDCHILD).depth == 2
        assert RunTag.objects.get(run__run_id=GRANDCHILD, key=ROOT_RUN_ID_TAG).value == ROOT

    def test_a_parent_in_another_experiment_leaves_the_run_a_root_marked_parent_missing(self):
        write([[source_run(ROOT)]], name="elsewhere")
        write([[source_run(CHILD, ROOT)]])
        child = Run.objects.get(run_id=CHILD)
        assert child.parent is None and child.parent_missing

    def test_a_cycle_in_the_source_is_cut_rather_than_refused(self):
        write([[source_run(ROOT, GRANDCHILD), source_run(CHILD, ROOT), source_run(GRANDCHILD, CHILD)]])
        runs = Run.objects.order_by("depth")
        assert [run.depth for run in runs] == [0, 1, 2]
        assert runs[0].parent_missing  # its parent is its own descendant
        assert Run.objects.subtree_of(runs[0]).count() == 3

    def test_importing_again_adds_only_what_is_new(self):
        first = source_run(
            ROOT,
            params={"lr": "0.1"},
            tags={"stage": "a"},
            status="RUNNING",
            metrics=[MetricInput("loss", 0.5, 100, 0), MetricInput("loss", math.nan, 101, 1)],
        )
        write([[first]])
        later = source_run(
            ROOT,
            params={"lr": "0.2", "depth": "3"},
            tags={"stage": "b", "team": "x"},
            status="FINISHED",
            end_time=500,
            metrics=[*first.metrics, MetricInput("loss", 0.1, 102, 2)],
        )
        counts = write([[later]])
        assert (counts.runs_created, counts.runs_existing, counts.runs_updated) == (0, 1, 1)
        assert (counts.params, counts.params_kept, counts.tags, counts.metric_points) == (1, 1, 1, 1)
        run = Run.objects.get(run_id=ROOT)
        # Running here, ended there since: caught up.
        assert (run.status, run.end_time) == ("FINISHED", 500)
        assert dict(run.params.values_list("key", "value")) == {"lr": "0.1", "depth": "3"}  # params are write-once
        # A tag held keeps its value; a new one is added.
        assert dict(run.tags.exclude(key=ROOT_RUN_ID_TAG).values_list("key", "value")) == {"stage": "a", "team": "x"}
        assert run.metrics.count() == 3
        assert run.latest_metrics.get(key="loss").step == 2

    def test_importing_again_overwrites_nothing_held_here(self):
        write([[source_run(ROOT, name="first", status="FINISHED", end_time=500, tags={"stage": "a"})]])
        importing.experiment_import(
            experiment=SourceExperiment(source_id="1", name="sweep", tags={"team": "x"}), run_chunks=[]
        )
        run = Run.objects.get(run_id=ROOT)
        services.run_update(run=run, name="renamed")
        services.run_set_tag(run=run, key="stage", value="edited")
        services.run_set_lifecycle(run=run, stage=DELETED)
        services.experiment_set_tag(experiment=run.experiment, key="team", value="y")
        held = snapshot()
        # The source still says: its old name and tag, running, active, and the old experiment tag.
        again = source_run(ROOT, name="first", status="RUNNING", tags={"stage": "a"})
        counts = importing.experiment_import(
            experiment=SourceExperiment(source_id="1", name="sweep", tags={"team": "x"}), run_chunks=[[again]]
        )
        assert snapshot() == held
        assert (counts.runs_updated, counts.tags) == (0, 0)

    def test_a_deleted_run_the_source_gives_no_deletion_time_gets_the_imports(self):
        before = now_ms()
        write([[source_run(ROOT, lifecycle_stage=DELETED), source_run(CHILD, lifecycle_stage=DELETED, deleted_time=7)]])
        assert Run.objects.get(run_id=ROOT).deleted_time >= before
        assert Run.objects.get(run_id=CHILD).deleted_time == 7

    def test_runs_held_in_another_experiment_are_named_and_leave_no_empty_experiment(self, monkeypatch):
        clashing = [f"{number:032x}" for number in range(1, 8)]
        write([[source_run(run_id) for run_id in clashing]], name="here first")
        copy = SourceExperiment(source_id="2", name="copy")
        monkeypatch.setattr(
            importing, "open_source", lambda location: FakeSource([copy], {"2": [source_run(r) for r in clashing]})
        )
        output = import_mlflow("fake://", "--experiment", "copy")  # named: no registry to import
        assert not Experiment.objects.filter(name="copy").exists()
        assert "0 experiments (0 new)" in output
        named = ", ".join(clashing[:5])
        assert (
            "7 runs were skipped: Runtree holds their run ids in another experiment ('here first'): "
            f"{named} and 2 more." in output
        )

    def test_an_experiment_with_runs_of_its_own_stays_though_some_clash(self):
        write([[source_run(ROOT)]], name="here first")
        counts = write([[source_run(ROOT), source_run(CHILD)]], name="copy")
        assert counts.runs_elsewhere == [(ROOT, "here first")]
        assert list(Run.objects.filter(experiment__name="copy").values_list("run_id", flat=True)) == [CHILD]

    def test_a_metric_point_given_twice_is_stored_once(self):
        point = MetricInput("loss", math.nan, 100, 0)
        counts = write([[source_run(ROOT, metrics=[point, point, MetricInput("loss", 0.2, 100, 0)])]])
        assert counts.metric_points == 2
        assert Run.objects.get(run_id=ROOT).latest_metrics.get().value == 0.2  # a number beats NaN

    def test_runtrees_own_tags_from_the_source_are_left_out(self):
        tags = {ROOT_RUN_ID_TAG: "someone-else", "runtree.best.loss": "0.1", "kept": "yes"}
        write([[source_run(ROOT, tags=tags)]])
        assert dict(RunTag.objects.values_list("key", "value")) == {ROOT_RUN_ID_TAG: ROOT, "kept": "yes"}

    def test_a_refused_value_names_the_run_and_writes_nothing_of_the_experiment(self):
        with pytest.raises(InvalidParameterValue, match=f"Run {CHILD}: Invalid lifecycle stage 'gone'"):
            write([[source_run(ROOT)], [source_run(CHILD, lifecycle_stage="gone")]])
        assert not Run.objects.exists() and not Experiment.objects.filter(name="sweep").exists()

    def test_a_source_failing_mid_way_writes_nothing_of_the_experiment(self):
        def failing_reader():
            yield [source_run(ROOT)]
            raise SourceError("Reading http://mlflow failed: connection reset")

        with pytest.raises(SourceError):
            write(failing_reader())
        assert not Run.objects.exists()

    def test_linking_again_changes_nothing(self):
        write([[source_run(GRANDCHILD, CHILD)], [source_run(CHILD, ROOT)], [source_run(ROOT)]])
        assert services.experiment_link_parents(experiment=Experiment.objects.get(name="sweep")) == []


# --- the writer's logged models ------------------------------------------------------------------

NET, DRAFT = "m-" + "a" * 32, "m-" + "b" * 32


def model_point(key, value, step, timestamp=100, **dataset):
    return MetricInput(key, value, timestamp, step, model_id=NET, **dataset)


def net(**fields):
    return SourceLoggedModel(**{"model_id": NET, "name": "net", "creation_time": 10, "last_updated_time": 20, **fields})


class TestTheWriterOfLoggedModels:
    def test_a_model_finds_its_runs_whatever_chunk_they_came_in(self):
        models_read_after = []

        def models():
            models_read_after.append(Run.objects.count())
            yield [net(source_run_id=GRANDCHILD, metrics={ROOT: [model_point("acc", 0.5, 0)]})]

        runs = [[source_run(ROOT, model_inputs=[NET])], [source_run(GRANDCHILD, model_outputs=[ModelOutput(NET, 7)])]]
        counts = write(runs, models=models())
        assert models_read_after == [2]  # once every run is written
        model = LoggedModel.objects.get(model_id=NET)
        assert (model.source_run.run_id, model.metrics.get().run.run_id) == (GRANDCHILD, ROOT)
        assert list(RunModelOutput.objects.values_list("run__run_id", "model__model_id", "step")) == [
            (GRANDCHILD, NET, 7)
        ]
        assert list(RunModelInput.objects.values_list("run__run_id", "model__model_id")) == [(ROOT, NET)]
        assert counts.logged_models == 1

    def test_nan_is_stored_as_null_and_the_sql_stores_max_float_as_infinity(self):
        points = [
            model_point("loss", math.nan, 0, dataset_name="test", dataset_digest="d1"),
            model_point("loss", SQL_STORE_INFINITY, 1, dataset_name="test", dataset_digest="d1"),
            model_point("loss", -SQL_STORE_INFINITY, 2),
        ]
        write([[source_run(ROOT)]], models=[[net(metrics={ROOT: points})]])
        held = LoggedModelMetric.objects.order_by("step").values_list("value", "dataset_name", "dataset_digest")
        assert list(held) == [(None, "test", "d1"), (math.inf, "test", "d1"), (-math.inf, None, None)]

    def test_importing_again_finalizes_a_pending_model_and_adds_what_is_new(self):
        first = net(
            status="PENDING", tags={"stage": "a"}, params={"depth": "3"}, metrics={ROOT: [model_point("acc", 0.5, 0)]}
        )
        write([[source_run(ROOT)]], models=[[first]])
        later = net(
            status="FAILED",
            status_message="upload failed",
            lifecycle_stage=DELETED,
            last_updated_time=30,
            tags={"stage": "b"},
            params={"depth": "4", "width": "8"},
            metrics={ROOT: [model_point("acc", 0.5, 0), model_point("acc", 0.6, 1)]},
        )
        counts = write([[source_run(ROOT)]], models=[[later]])
        model = LoggedModel.objects.get(model_id=NET)
        # Pending here, finalized there since: caught up. Its lifecycle and tags stay Runtree's.
        assert (model.status, model.status_message, model.lifecycle_stage) == ("FAILED", "upload failed", "active")
        assert (model.creation_time, model.last_updated_time) == (10, 30)
        assert dict(model.tags.values_list("key", "value")) == {"stage": "a"}
        assert dict(model.params.values_list("key", "value")) == {"depth": "3", "width": "8"}  # write-once
        assert model.metrics.count() == 2
        assert (counts.logged_models, counts.params_kept) == (0, 1)

    def test_a_model_held_in_another_experiment_is_left_alone_and_counted(self):
        write([[source_run(ROOT)]], name="elsewhere", models=[[net()]])
        counts = write([[source_run(CHILD)]], models=[[net(name="renamed", source_run_id=CHILD)]])
        assert counts.logged_models_elsewhere == 1
        model = LoggedModel.objects.get(model_id=NET)
        assert (model.experiment.name, model.name, model.source_run) == ("elsewhere", "net", None)

    def test_a_run_or_model_of_an_experiment_imported_later_is_linked_by_importing_again(self):
        models = [[net(source_run_id=ROOT, metrics={ROOT: [model_point("acc", 0.5, 0)]})]]
        write([], name="models", models=models)
        model = LoggedModel.objects.get()
        assert model.source_run is None and not model.metrics.exists()  # its run is not here yet
        evaluation = [[source_run(CHILD, model_inputs=[NET, DRAFT])]]
        write(evaluation, name="evaluation")
        assert list(RunModelInput.objects.values_list("model__model_id", flat=True)) == [NET]  # DRAFT is not here yet

        write([[source_run(ROOT)]], name="training")
        write([], name="models", models=[*models, [SourceLoggedModel(model_id=DRAFT, name="draft")]])
        write(evaluation, name="evaluation")
        model.refresh_from_db()
        assert model.source_run.run_id == ROOT and model.metrics.count() == 1
        assert sorted(RunModelInput.objects.values_list("model__model_id", flat=True)) == [NET, DRAFT]

    def test_a_refused_value_names_the_model_and_writes_nothing_of_the_experiment(self):
        with pytest.raises(InvalidParameterValue, match=f"Logged model {DRAFT}: Invalid model name"):
            write([[source_run(ROOT)]], models=[[net()], [SourceLoggedModel(model_id=DRAFT, name="a/b")]])
        assert not Run.objects.exists() and not LoggedModel.objects.exists()

    def test_a_chunk_of_models_costs_the_same_queries_whatever_its_size(self):
        def models(count, offset):
            return [
                SourceLoggedModel(
                    model_id=f"m-{offset + number:032x}",
                    name="net",
                    source_run_id=ROOT,
                    tags={"stage": "a"},
                    params={"depth": "3"},
                    metrics={ROOT: [model_point("acc", 0.5, 0)]},
                )
                for number in range(count)
            ]

        write([[source_run(ROOT)]])
        queries = []
        for count, offset in ((2, 0), (20, 100)):
            with CaptureQueriesContext(connection) as captured:
                write([], models=[models(count, offset)])
            queries.append(len(captured))
        assert queries[0] == queries[1]
        assert LoggedModel.objects.count() == 22
