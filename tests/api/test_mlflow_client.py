"""The real mlflow client, unchanged, against a live Runtree: the seed workloads and the
calls around them, checked by reading the results back through the client."""

import math
from collections import Counter

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from tests.api import seed000_nested_tuning, seed001_challenge, seed001_no_child_runs
from tests.factories import ExperimentFactory, RunFactory, bulk_children
from tracker.models import Run

pytestmark = pytest.mark.usefixtures("tracking_uri")


def children_of(parent_run_id: str, experiment_id: str):
    return mlflow.search_runs(
        experiment_ids=[experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )


def test_the_tutorials_nested_tuning_rounds_come_back_as_trees_of_tagged_runs():
    seed000_nested_tuning.run_workload()

    experiment = mlflow.get_experiment_by_name("Nested Child Association")
    runs = mlflow.search_runs(experiment_ids=[experiment.experiment_id])
    assert len(runs) == 3 * 5 * (1 + 5)
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert len(parents) == 15 and len(children) == 75
    assert set(children["tags.mlflow.parentRunId"]) == set(parents["run_id"])
    assert (children["tags.mlflow.rootRunId"] == children["tags.mlflow.parentRunId"]).all()
    assert Counter(runs["tags.test_identifier"]) == {"default": 30, "params_test_2": 30, "params_test_3": 30}
    assert set(runs["status"]) == {"FINISHED"}
    # Each round's children drew their params from that round's choices.
    round_3 = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string="tags.test_identifier = 'params_test_3' AND tags.mlflow.parentRunId IS NOT NULL",
    )
    assert len(round_3) == 25
    assert set(round_3["params.param1"]) <= {"b", "c"} and set(round_3["params.param2"]) <= {"d", "f"}
    assert round_3["metrics.metric1"].between(0, 1).all()
    for parent_id in parents["run_id"]:
        assert len(children_of(parent_id, experiment.experiment_id)) == 5


def test_the_notebooks_runs_without_children_run_twice_make_fifty_flat_runs():
    seed001_no_child_runs.run_workload()

    experiment = mlflow.get_experiment_by_name("No Child Runs")
    runs = mlflow.search_runs(experiment_ids=[experiment.experiment_id])
    assert len(runs) == 50
    assert "tags.mlflow.parentRunId" not in runs.columns  # no run has the tag
    assert (runs["tags.mlflow.rootRunId"] == runs["run_id"]).all()
    assert Counter(runs["tags.mlflow.runName"]) == {f"run_{i}_test_{t}": 2 for i in range(5) for t in range(5)}
    assert set(runs["params.param1"]) <= {"a", "b", "c"}


def test_the_notebooks_challenge_records_each_parents_best_child():
    seed001_challenge.run_workload()

    experiment = mlflow.get_experiment_by_name("Parent Child Association Challenge")
    parents = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id], filter_string="tags.mlflow.parentRunId IS NULL"
    )
    assert sorted(parents["tags.mlflow.runName"]) == [f"parent_run_test_subset_test_{x}" for x in range(5)]
    for _, parent in parents.iterrows():
        children = children_of(parent["run_id"], experiment.experiment_id)
        assert len(children) == 25
        best = children.loc[children["metrics.metric1"].idxmin()]
        assert parent["metrics.best_metric1"] == best["metrics.metric1"]
        assert (parent["params.best_param1"], parent["params.best_param2"]) == (
            best["params.param1"],
            best["params.param2"],
        )
        assert set(children["tags.test_identifier"]) == {"subset_test"}


def test_a_three_level_tree_made_with_create_run_is_found_by_root_and_name():
    # Seed 002: MlflowClient.create_run with the parent tag, and a search by root and name.
    experiment_id = mlflow.create_experiment(name="explorer_history")
    mlflow.set_experiment(experiment_id=experiment_id)
    client = mlflow.MlflowClient()
    active_run = mlflow.start_run(experiment_id=experiment_id, run_name="parent_run_name")
    current_active_run_id = active_run.info.run_id
    child_1 = client.create_run(
        run_name="child_1", experiment_id=experiment_id, tags={MLFLOW_PARENT_RUN_ID: f"{current_active_run_id}"}
    )
    client.create_run(
        run_name="child_2", experiment_id=experiment_id, tags={MLFLOW_PARENT_RUN_ID: f"{current_active_run_id}"}
    )
    experiment_runs = client.search_runs(experiment_ids=[experiment_id])
    assert len(experiment_runs) == 3

    root_run_id, parent_run_name = current_active_run_id, "child_1"
    searched_runs = client.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.mlflow.rootRunId ILIKE '%{root_run_id}%' and tags.mlflow"
        f".runName ILIKE '%{parent_run_name}%'",
        run_view_type=ViewType.ACTIVE_ONLY,
    )
    assert [run.info.run_id for run in searched_runs] == [child_1.info.run_id]

    sub_child = client.create_run(
        run_name="sub_child_1", experiment_id=experiment_id, tags={MLFLOW_PARENT_RUN_ID: f"{child_1.info.run_id}"}
    )
    mlflow.end_run()
    assert sub_child.data.tags["mlflow.rootRunId"] == root_run_id
    assert sub_child.data.tags[MLFLOW_PARENT_RUN_ID] == child_1.info.run_id
    under_root = client.search_runs(
        experiment_ids=[experiment_id], filter_string=f"tags.mlflow.rootRunId = '{root_run_id}'"
    )
    assert len(under_root) == 4
    # '%child_1%' now also matches sub_child_1, newest first.
    searched_runs = client.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.mlflow.rootRunId ILIKE '%{root_run_id}%' and tags.mlflow.runName ILIKE '%child_1%'",
    )
    assert {run.info.run_name for run in searched_runs} == {"child_1", "sub_child_1"}
    assert Run.objects.get(run_id=sub_child.info.run_id).depth == 2


def test_searching_by_the_parent_tag_returns_exactly_the_children():
    # Seed 003, as written there.
    experiment_id = mlflow.create_experiment("experiment1")
    with mlflow.start_run(
        run_name="PARENT_RUN",
        experiment_id=experiment_id,
        tags={"version": "v1", "priority": "P1"},
        description="parent",
    ) as parent_run:
        mlflow.log_param("parent", "yes")
        with mlflow.start_run(
            run_name="CHILD_RUN",
            experiment_id=experiment_id,
            description="child",
            nested=True,
        ) as child_run:
            mlflow.log_param("child", "yes")
    query = f"tags.mlflow.parentRunId = '{parent_run.info.run_id}'"
    results = mlflow.search_runs(experiment_ids=[experiment_id], filter_string=query)
    assert list(results["run_id"]) == [child_run.info.run_id]
    assert results["params.child"][0] == "yes"
    parent = mlflow.get_run(parent_run.info.run_id)
    assert parent.data.tags["priority"] == "P1" and parent.data.tags["mlflow.note.content"] == "parent"


def test_set_experiment_creates_a_new_name_and_reuses_an_existing_one():
    created = mlflow.set_experiment("sweeps")
    assert created.name == "sweeps" and created.lifecycle_stage == "active"
    again = mlflow.set_experiment("sweeps")
    assert again.experiment_id == created.experiment_id
    assert [e.name for e in mlflow.search_experiments(filter_string="name = 'sweeps'")] == ["sweeps"]
    assert mlflow.get_experiment("0").name == "Default"


def test_log_batch_stores_metrics_params_and_tags_read_back_by_get_run():
    client = MlflowClient()
    run = client.create_run(experiment_id="0")
    client.log_batch(
        run.info.run_id,
        metrics=[Metric("loss", 0.5, 1000, 0), Metric("loss", 0.25, 2000, 1), Metric("acc", 0.9, 2000, 1)],
        params=[Param("lr", "0.01"), Param("depth", "4")],
        tags=[RunTag("team", "vision")],
    )
    data = client.get_run(run.info.run_id).data
    assert data.metrics == {"loss": 0.25, "acc": 0.9}  # the latest values
    assert data.params == {"lr": "0.01", "depth": "4"}
    assert data.tags["team"] == "vision"


def test_the_largest_batch_mlflow_allows_is_sent_in_one_call_and_stored_whole():
    # 100 params of 6,000 characters, 100 tags of 8,000 and 800 metrics: within every limit of
    # MLflow's, ~1.7 MB in one request (the client splits by count, not size), and `mlflow
    # server` stores it. Refused as over MLflow's documented 1 MB, nothing of it was stored.
    client = MlflowClient()
    run_id = client.create_run(experiment_id="0").info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric(f"m{i:03d}" + "k" * 240, i / 10, 1000 + i, i) for i in range(800)],
        params=[Param(f"p{i}", str(i % 10) * 6000) for i in range(100)],
        tags=[RunTag(f"t{i}", str(i % 10) * 8000) for i in range(100)],
    )
    data = client.get_run(run_id).data
    assert len(data.metrics) == 800 and data.params["p99"] == "9" * 6000 and data.tags["t42"] == "2" * 8000


def test_the_largest_batch_in_non_ascii_is_sent_in_one_call_and_stored_whole():
    # The client's JSON escapes each non-ASCII character (6 bytes, 12 for an emoji): the same
    # legal batch in emoji values and CJK keys is 18.4 MB, and a batch of accented params was
    # refused as over the 2 MiB body limit, with nothing of it stored.
    client = MlflowClient()
    run_id = client.create_run(experiment_id="0").info.run_id
    key = "評" * 246
    client.log_batch(
        run_id,
        metrics=[Metric(f"m{i:03d}{key}", i / 10, 1000 + i, i) for i in range(800)],
        params=[Param(f"p{i:03d}{key}", "😀" * 6000) for i in range(100)],
        tags=[RunTag(f"t{i:03d}{key}", "ü" * 8000) for i in range(100)],
    )
    data = client.get_run(run_id).data
    assert len(data.metrics) == 800 and len(data.params) == 100
    assert data.params[f"p099{key}"] == "😀" * 6000 and data.tags[f"t042{key}"] == "ü" * 8000


def test_metric_history_keeps_every_step_and_round_trips_nan_and_infinities():
    client = MlflowClient()
    run_id = client.create_run(experiment_id="0").info.run_id
    values = [1.0, math.nan, math.inf, -math.inf, 0.125]
    for step, value in enumerate(values):
        client.log_metric(run_id, "score", value, timestamp=1000 + step, step=step)
    history = client.get_metric_history(run_id, "score")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert [m.timestamp for m in history] == [1000, 1001, 1002, 1003, 1004]
    read = [m.value for m in history]
    assert math.isnan(read[1]) and read[:1] + read[2:] == [1.0, math.inf, -math.inf, 0.125]
    client.log_metric(run_id, "last", math.nan, timestamp=1, step=9)
    assert math.isnan(client.get_run(run_id).data.metrics["last"])
    assert client.get_metric_history(run_id, "never-logged") == []


def test_paging_through_2500_runs_in_a_chosen_order_loses_and_repeats_nothing():
    experiment = ExperimentFactory()
    parent = RunFactory(experiment=experiment)
    bulk_children(parent, 2499)
    client = MlflowClient()
    pages, token = [], None
    while True:
        page = client.search_runs(
            [str(experiment.pk)], order_by=["params.param1 DESC"], max_results=1000, page_token=token
        )
        pages.append(page)
        token = page.token
        if not token:
            break
    assert [len(page) for page in pages] == [1000, 1000, 500]
    run_ids = [run.info.run_id for page in pages for run in page]
    assert len(set(run_ids)) == 2500
    assert set(run_ids) == set(Run.objects.filter(experiment=experiment).values_list("run_id", flat=True))
    # Children (param1 "2", "1", "0") first, newest first within a value; the parent has no param1.
    param1 = [run.data.params.get("param1") for page in pages for run in page]
    assert param1 == sorted(param1[:-1], reverse=True) + [None]
    starts = [run.info.start_time for page in pages for run in page if run.data.params.get("param1") == "2"]
    assert starts == sorted(starts, reverse=True)
    assert len(mlflow.search_runs(experiment_ids=[str(experiment.pk)])) == 2500


def test_a_deleted_run_leaves_default_searches_and_comes_back_when_restored():
    client = MlflowClient()
    run_id = client.create_run(experiment_id="0").info.run_id
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs(["0"]) == []
    assert [r.info.run_id for r in client.search_runs(["0"], run_view_type=ViewType.DELETED_ONLY)] == [run_id]
    client.restore_run(run_id)
    assert [r.info.run_id for r in client.search_runs(["0"], run_view_type=ViewType.ALL)] == [run_id]
    assert client.get_run(run_id).info.lifecycle_stage == "active"


def test_a_deleted_experiment_cannot_be_set_until_it_is_restored():
    client = MlflowClient()
    experiment_id = client.create_experiment("to-delete", tags={"team": "vision"})
    run_id = client.create_run(experiment_id).info.run_id
    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert [e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)] == ["to-delete"]
    with pytest.raises(MlflowException, match="Cannot set a deleted experiment"):
        mlflow.set_experiment("to-delete")
    client.restore_experiment(experiment_id)
    assert mlflow.set_experiment("to-delete").tags == {"team": "vision"}
    assert client.get_run(run_id).info.lifecycle_stage == "active"


def test_set_terminated_finishes_a_run_with_its_status_and_end_time():
    client = MlflowClient()
    run = client.create_run(experiment_id="0", run_name="short")
    assert run.info.status == "RUNNING" and run.info.end_time is None
    client.set_terminated(run.info.run_id, status="FAILED", end_time=run.info.start_time + 5000)
    info = client.get_run(run.info.run_id).info
    assert (info.status, info.end_time, info.run_name) == ("FAILED", run.info.start_time + 5000, "short")


def test_renaming_tagging_and_deleting_a_tag_go_through_the_client():
    client = MlflowClient()
    experiment_id = client.create_experiment("old name")
    client.rename_experiment(experiment_id, "new name")
    client.set_experiment_tag(experiment_id, "runtree.goal.loss", "max")
    experiment = client.get_experiment_by_name("new name")
    assert experiment.experiment_id == experiment_id and experiment.tags == {"runtree.goal.loss": "max"}
    run_id = client.create_run(experiment_id).info.run_id
    client.set_tag(run_id, "stage", "draft")
    client.delete_tag(run_id, "stage")
    assert "stage" not in client.get_run(run_id).data.tags
    with pytest.raises(MlflowException, match="No tag with name: stage"):
        client.delete_tag(run_id, "stage")


def test_an_experiment_tag_is_deleted_by_the_client_and_the_fluent_call():
    client = MlflowClient()
    experiment_id = mlflow.set_experiment("tagged").experiment_id
    client.set_experiment_tag(experiment_id, "team", "vision")
    client.set_experiment_tag(experiment_id, "stage", "draft")
    client.delete_experiment_tag(experiment_id, "team")
    assert client.get_experiment(experiment_id).tags == {"stage": "draft"}
    mlflow.delete_experiment_tag("stage")
    assert client.get_experiment(experiment_id).tags == {}


def test_deleting_an_experiment_tag_is_refused_as_mlflow_refuses_it():
    client = MlflowClient()
    experiment_id = client.create_experiment("tagged", tags={"team": "vision"})
    with pytest.raises(MlflowException, match="No tag with name: stage") as missing_tag:
        client.delete_experiment_tag(experiment_id, "stage")
    assert missing_tag.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException, match="987654") as missing_experiment:
        client.delete_experiment_tag("987654", "team")
    assert missing_experiment.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.delete_experiment(experiment_id)
    with pytest.raises(MlflowException, match="must be in the 'active' state") as deleted:
        client.delete_experiment_tag(experiment_id, "team")
    assert deleted.value.error_code == "INVALID_PARAMETER_VALUE"
    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).tags == {"team": "vision"}


def test_a_deleted_goal_tag_hands_the_best_child_back_to_the_goal_read_off_the_name():
    client = MlflowClient()
    experiment_id = mlflow.set_experiment("goal").experiment_id
    client.set_experiment_tag(experiment_id, "runtree.goal.loss", "max")
    with mlflow.start_run(run_name="sweep") as parent:
        children = {}
        for loss in (0.1, 0.5):
            with mlflow.start_run(nested=True) as child:
                mlflow.log_metric("loss", loss)
                children[loss] = child.info.run_id

    def best():
        tags = client.get_run(parent.info.run_id).data.tags
        return tags["runtree.best.loss"], tags["runtree.best.loss.run_id"]

    assert best() == ("0.5", children[0.5])
    client.delete_experiment_tag(experiment_id, "runtree.goal.loss")
    assert best() == ("0.1", children[0.1])  # a loss: lower is better


def test_the_client_sees_runtrees_errors_with_mlflows_error_codes():
    client = MlflowClient()
    with pytest.raises(MlflowException) as missing:
        client.get_run("0" * 32)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    run_id = client.create_run(experiment_id="0").info.run_id
    client.log_param(run_id, "lr", "0.1")
    with pytest.raises(MlflowException, match="Changing param values is not allowed") as changed:
        client.log_param(run_id, "lr", "0.2")
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="already exists") as twice:
        client.create_experiment("Default")
    assert twice.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert client.get_experiment_by_name("no such experiment") is None
