"""Query counts of the MLflow API's busiest endpoints, pinned.

Under the test's own transaction a service's atomic block is a savepoint; in production it is
the request's one transaction (BEGIN/COMMIT in place of SAVEPOINT/RELEASE).
"""

import json

import pytest
from django.db import connection

from tests.factories import RunFactory, bulk_children
from tracker import services
from tracker.models import LoggedModel, Run
from tracker.services import KeyValue, MetricInput, datasets, logged_models
from tracker.summaries import refresh as summary_refresh

pytestmark = pytest.mark.django_db

API = "/api/2.0/mlflow/"


def post(client, rpc: str, body: dict):
    return client.post(API + rpc, json.dumps(body), content_type="application/json")


@pytest.fixture
def parent(experiment):
    return RunFactory(experiment=experiment)


@pytest.fixture
def child(parent):
    child = services.run_create(
        experiment=parent.experiment, name="child", tags=[KeyValue("mlflow.parentRunId", parent.run_id)]
    )
    services.run_log_batch(run=child, metrics=[MetricInput("loss", 1.0, 1)], params=[KeyValue("lr", "0.1")])
    return child


def test_get_run_is_six_queries(client, child, django_assert_num_queries):
    # 1 the run, 2 its params, 3 its tags, 4 its latest metrics, 5 its best-child summaries,
    # 6 its inputs and outputs (datasets, model inputs and outputs in one statement)
    with django_assert_num_queries(6):
        response = client.get(API + "runs/get", {"run_id": child.run_id})
    assert response.status_code == 200


def test_log_metric_on_a_child_is_six_queries_and_two_on_postgresql(client, child, django_assert_num_queries):
    # SQLite: 1 the run; 2 SAVEPOINT; 3 insert the metric; 4 upsert the key's latest value
    # (compared with the stored one on its locked row); 5 mark the parent's summary stale; 6 RELEASE.
    # PostgreSQL: 1 the run; 2 the same three writes as one statement (hot_sql.log_child_metric).
    body = {"run_id": child.run_id, "key": "loss", "value": 0.5, "timestamp": 2, "step": 1}
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 6):
        response = post(client, "runs/log-metric", body)
    assert response.status_code == 200
    assert client.get(API + "runs/get", {"run_id": child.run_id}).json()["run"]["data"]["metrics"] == [
        {"key": "loss", "value": 0.5, "timestamp": 2, "step": 1}
    ]
    assert Run.objects.get(pk=child.parent_id).summary_stale


def test_an_older_metric_value_leaves_the_latest_and_marks_nothing(client, child, django_assert_num_queries):
    # SQLite: 1 the run; 2 SAVEPOINT; 3 insert the metric; 4 the upsert changes nothing; 5 RELEASE.
    # PostgreSQL: 1 the run; 2 the one statement, which leaves the latest value and the parent.
    Run.objects.filter(pk=child.parent_id).update(summary_stale=False)
    body = {"run_id": child.run_id, "key": "loss", "value": 0.5, "timestamp": 0, "step": 0}
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 5):
        response = post(client, "runs/log-metric", body)
    assert response.status_code == 200
    assert client.get(API + "runs/get", {"run_id": child.run_id}).json()["run"]["data"]["metrics"] == [
        {"key": "loss", "value": 1.0, "timestamp": 1, "step": 0}
    ]
    assert not Run.objects.get(pk=child.parent_id).summary_stale


def test_log_param_is_three_queries_and_four_when_the_key_is_there(client, child, django_assert_num_queries):
    # 1 the run; 2 is the run some parent's best (then its params refresh that summary, in one
    # transaction with the insert); 3 insert the param, a statement on its own: no transaction
    with django_assert_num_queries(3):
        response = post(client, "runs/log-parameter", {"run_id": child.run_id, "key": "wd", "value": "0"})
    assert response.status_code == 200
    # The same value again is fine; the value already stored is read to compare (the 4th).
    with django_assert_num_queries(4):
        response = post(client, "runs/log-parameter", {"run_id": child.run_id, "key": "lr", "value": "0.1"})
    assert response.status_code == 200
    params = client.get(API + "runs/get", {"run_id": child.run_id}).json()["run"]["data"]["params"]
    assert sorted((p["key"], p["value"]) for p in params) == [("lr", "0.1"), ("wd", "0")]


def test_a_param_of_a_best_run_refreshes_its_parents_summary_in_one_transaction(
    client, parent, child, django_assert_num_queries
):
    summary_refresh.refresh_tree(root_pk=parent.pk)
    assert Run.objects.get(pk=parent.pk).summary_stale is False
    # 1 the run; 2 it is its parent's best; 3 SAVEPOINT; 4 insert; 5 mark the parent stale; 6 RELEASE
    with django_assert_num_queries(6):
        response = post(client, "runs/log-parameter", {"run_id": child.run_id, "key": "wd", "value": "0"})
    assert response.status_code == 200
    assert Run.objects.get(pk=parent.pk).summary_stale is True


def test_set_tag_and_end_run_are_two_queries(client, child, django_assert_num_queries):
    # 1 the run; 2 upsert the tag (or update the run), a statement on its own: no transaction
    with django_assert_num_queries(2):
        response = post(client, "runs/set-tag", {"run_id": child.run_id, "key": "stage", "value": "eval"})
    assert response.status_code == 200
    with django_assert_num_queries(2):
        response = post(client, "runs/update", {"run_id": child.run_id, "status": "FINISHED", "end_time": 9})
    assert response.json()["run_info"]["status"] == "FINISHED"
    run = client.get(API + "runs/get", {"run_id": child.run_id}).json()["run"]
    assert {"key": "stage", "value": "eval"} in run["data"]["tags"]
    assert (run["info"]["status"], run["info"]["end_time"]) == ("FINISHED", 9)


def test_log_batch_is_nine_queries_not_one_per_item(client, child, django_assert_num_queries):
    # 1 the run; 2 SAVEPOINT; 3 insert the params new to the run; 4 is the run some parent's
    # best; 5 insert the metrics (by COPY on PostgreSQL); 6 upsert their keys' latest values; 7 mark the parent's
    # summary stale; 8 upsert the tags; 9 RELEASE
    body = {
        "run_id": child.run_id,
        "metrics": [{"key": f"m{i}", "value": i, "timestamp": 5, "step": i} for i in range(150)],
        "params": [{"key": f"p{i}", "value": str(i)} for i in range(50)],
        "tags": [{"key": f"t{i}", "value": str(i)} for i in range(50)],
    }
    with django_assert_num_queries(9):
        response = post(client, "runs/log-batch", body)
    assert response.status_code == 200


def test_create_run_under_a_parent_is_eight_queries_and_one_lock(client, parent, django_assert_num_queries):
    # The view's transaction (SAVEPOINT and RELEASE here, BEGIN and COMMIT in production) holds:
    # 1 the experiment; 2 the parent; 3 insert the run; 4 its path and artifact location;
    # 5 its tags; 6 the answer's tags. No runs can be waiting for a fresh random run_id. On
    # PostgreSQL, before 2, the experiment's trees held still (tracker/services/placement.py).
    body = {
        "experiment_id": str(parent.experiment_id),
        "tags": [{"key": "mlflow.parentRunId", "value": parent.run_id}],
    }
    with django_assert_num_queries(9 if connection.vendor == "postgresql" else 8):
        response = post(client, "runs/create", body)
    assert response.status_code == 200
    created = response.json()["run"]
    assert created == client.get(API + "runs/get", {"run_id": created["info"]["run_id"]}).json()["run"]
    assert {tag["key"]: tag["value"] for tag in created["data"]["tags"]}["mlflow.rootRunId"] == parent.run_id


@pytest.mark.parametrize("page_size", [10, 300])
def test_search_runs_is_six_queries_whatever_the_page_size(client, parent, child, page_size, django_assert_num_queries):
    bulk_children(parent, 400, metric_key="loss")
    body = {
        "experiment_ids": [str(parent.experiment_id)],
        "filter": "metrics.loss < 0.9 AND params.param1 != '5'",
        "order_by": ["metrics.loss DESC"],
        "max_results": page_size,
    }
    # 1 the page of runs (filter and order in one statement, one row past the page);
    # 2 their params, 3 their tags, 4 their latest metrics, 5 their best-child summaries,
    # 6 their inputs and outputs
    with django_assert_num_queries(6):
        response = post(client, "runs/search", body)
    page = response.json()
    assert len(page["runs"]) == page_size and "next_page_token" in page
    losses = [run["data"]["metrics"][0]["value"] for run in page["runs"]]
    assert losses == sorted(losses, reverse=True) and losses[0] < 0.9


def test_search_experiments_is_two_queries(client, experiment, django_assert_num_queries):
    services.experiment_set_tag(experiment=experiment, key="team", value="vision")
    # 1 the page of experiments, 2 their tags
    with django_assert_num_queries(2):
        response = post(client, "experiments/search", {"filter": "tags.team = 'vision'"})
    assert [e["name"] for e in response.json()["experiments"]] == [experiment.name]


@pytest.fixture
def runs_with_inputs_and_outputs(parent):
    """Ten children, each with a dataset input, a model it produced and a model it used."""
    experiment = parent.experiment
    for i in range(10):
        run = services.run_create(
            experiment=experiment, name=f"c{i}", tags=[KeyValue("mlflow.parentRunId", parent.run_id)]
        )
        tag = KeyValue("mlflow.data.context", "training")
        dataset = datasets.DatasetInput(name="train", digest=f"d{i % 3}", source_type="local", source="{}", tags=[tag])
        produced = logged_models.logged_model_create(experiment=experiment, name=f"m{i}", source_run=run)
        logged_models.run_log_outputs(run=run, models=[logged_models.ModelOutput(produced.model_id, step=i)])
        datasets.run_log_inputs(run=run, datasets=[dataset], model_ids=[produced.model_id])
        services.run_log_metric(run=run, metric=MetricInput("acc", i / 10, 1, model_id=produced.model_id))
    return experiment


def test_search_runs_reads_every_runs_inputs_and_outputs_in_one_query(
    client, runs_with_inputs_and_outputs, django_assert_num_queries
):
    body = {"experiment_ids": [str(runs_with_inputs_and_outputs.pk)], "filter": "attributes.run_name LIKE 'c%'"}
    # 1 the page; 2 params; 3 tags; 4 latest metrics; 5 summaries; 6 inputs and outputs
    with django_assert_num_queries(6):
        runs = post(client, "runs/search", body).json()["runs"]
    assert len(runs) == 10
    for run in runs:
        assert run["inputs"]["dataset_inputs"][0]["tags"] == [{"key": "mlflow.data.context", "value": "training"}]
        assert run["inputs"]["model_inputs"][0]["model_id"] == run["outputs"]["model_outputs"][0]["model_id"]


def test_search_logged_models_is_four_queries_whatever_the_page_size(
    client, runs_with_inputs_and_outputs, django_assert_num_queries
):
    body = {"experiment_ids": [str(runs_with_inputs_and_outputs.pk)], "filter": "metrics.acc >= 0.2"}
    # 1 the page of models with their source runs; 2 their tags; 3 their params; 4 their metrics
    with django_assert_num_queries(4):
        models = post(client, "logged-models/search", body).json()["models"]
    assert sorted(m["info"]["name"] for m in models) == [f"m{i}" for i in range(2, 10)]
    assert all(m["data"]["metrics"][0]["key"] == "acc" for m in models)


def test_search_logged_models_on_a_dataset_alone_is_four_queries_too(
    client, runs_with_inputs_and_outputs, django_assert_num_queries
):
    for model in LoggedModel.objects.filter(name__in=["m1", "m4", "m7"]).select_related("source_run"):
        on_test = MetricInput("acc", 0.5, 2, model_id=model.model_id, dataset_name="test", dataset_digest="t")
        services.run_log_metric(run=model.source_run, metric=on_test)
    body = {"experiment_ids": [str(runs_with_inputs_and_outputs.pk)], "datasets": [{"dataset_name": "test"}]}
    # The same four: "has a metric on the dataset" is an EXISTS inside the page's query.
    with django_assert_num_queries(4):
        models = post(client, "logged-models/search", body).json()["models"]
    assert sorted(m["info"]["name"] for m in models) == ["m1", "m4", "m7"]


def test_get_logged_model_is_four_queries(client, runs_with_inputs_and_outputs, django_assert_num_queries):
    model = LoggedModel.objects.get(name="m3")
    # 1 the model with its source run; 2 its tags; 3 its params; 4 its metrics
    with django_assert_num_queries(4):
        response = client.get(API + f"logged-models/{model.model_id}")
    assert response.json()["model"]["data"]["metrics"][0]["value"] == 0.3
