"""MLflow 3's logged models and datasets through the real mlflow client against a live
Runtree: what `log_model`, autolog and `log_input` call, read back through the client."""

import mlflow
import mlflow.data
import numpy as np
import pandas as pd
import pytest
import requests
from django.test import Client
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

from tests.dashboard.test_run_page_inputs import rows
from tracker.api.mlflow import logged_models as logged_models_api
from tracker.models import LoggedModelMetric, Metric

pytestmark = pytest.mark.usefixtures("tracking_uri")


@pytest.fixture
def client():
    return MlflowClient()


@pytest.fixture
def experiment_id():
    return mlflow.set_experiment("models").experiment_id


def test_a_logged_model_is_created_pending_and_finalized_ready(client, experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", "0.5")
        model = client.create_logged_model(
            experiment_id,
            name="ridge",
            source_run_id=run.info.run_id,
            params={"alpha": "0.5"},
            model_type="regressor",
            tags={"team": "vision"},
        )
    assert model.model_id.startswith("m-") and len(model.model_id) == 34
    assert model.status == LoggedModelStatus.PENDING
    assert model.artifact_location == f"mlflow-artifacts:/{experiment_id}/models/{model.model_id}/artifacts"
    assert (model.name, model.source_run_id, model.model_type) == ("ridge", run.info.run_id, "regressor")

    ready = client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)

    assert ready.status == LoggedModelStatus.READY
    fetched = client.get_logged_model(model.model_id)
    assert fetched.params == {"alpha": "0.5"}
    assert fetched.tags == {"team": "vision"}
    assert fetched.experiment_id == experiment_id


def test_tags_and_params_are_set_deleted_and_kept(client, experiment_id):
    model = client.create_logged_model(experiment_id, name="m")
    client.set_logged_model_tags(model.model_id, {"stage": "dev", "owner": "ana", "path/like": "x"})
    client.set_logged_model_tags(model.model_id, {"stage": "prod"})
    client.delete_logged_model_tag(model.model_id, "owner")
    client.delete_logged_model_tag(model.model_id, "path/like")
    client.log_model_params(model.model_id, {f"p{i}": str(i) for i in range(150)})

    fetched = client.get_logged_model(model.model_id)
    assert fetched.tags == {"stage": "prod"}
    assert len(fetched.params) == 150 and fetched.params["p149"] == "149"
    with pytest.raises(MlflowException, match="No tag with key 'owner'") as error:
        client.delete_logged_model_tag(model.model_id, "owner")
    assert error.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_deleted_model_is_gone_unless_asked_for(client, experiment_id):
    model = client.create_logged_model(experiment_id, name="gone")
    client.delete_logged_model(model.model_id)

    with pytest.raises(MlflowException) as error:
        client.get_logged_model(model.model_id)
    assert error.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client._tracking_client.store.get_logged_model(model.model_id, allow_deleted=True).model_id == model.model_id
    assert client.search_logged_models([experiment_id]) == []


def test_metrics_logged_for_a_model_are_the_models_and_the_runs(client, experiment_id):
    dataset = mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2]}), name="eval-set")
    with mlflow.start_run() as run:
        model = client.create_logged_model(experiment_id, name="m", source_run_id=run.info.run_id)
        mlflow.log_metric("accuracy", 0.9, step=1, model_id=model.model_id, dataset=dataset)
        mlflow.log_metric("accuracy", 0.9, step=1, model_id=model.model_id, dataset=dataset, timestamp=1)

    fetched = client.get_logged_model(model.model_id)
    assert [(m.key, m.value, m.step, m.run_id, m.model_id, m.dataset_name) for m in fetched.metrics] == [
        ("accuracy", 0.9, 1, run.info.run_id, model.model_id, "eval-set"),
        ("accuracy", 0.9, 1, run.info.run_id, model.model_id, "eval-set"),
    ]
    history = client.get_metric_history(run.info.run_id, "accuracy")
    assert {(m.model_id, m.dataset_name, m.dataset_digest) for m in history} == {
        (model.model_id, "eval-set", dataset.digest)
    }


def test_search_filters_on_name_metrics_params_and_attributes_and_orders_and_pages(client, experiment_id):
    with mlflow.start_run() as run:
        ids = {}
        for name, accuracy in [("a", 0.7), ("b", 0.9), ("c", 0.8)]:
            model = client.create_logged_model(
                experiment_id,
                name=name,
                source_run_id=run.info.run_id,
                params={"kind": "tree" if name != "a" else "linear"},
            )
            mlflow.log_metric("accuracy", accuracy, model_id=model.model_id)
            ids[name] = model.model_id
    client.finalize_logged_model(ids["b"], LoggedModelStatus.READY)

    def names(**kwargs):
        return [m.name for m in client.search_logged_models([experiment_id], **kwargs)]

    assert names() == ["c", "b", "a"]  # newest first
    assert names(filter_string="name = 'b'") == ["b"]
    assert names(
        filter_string="metrics.accuracy > 0.75 AND params.kind = 'tree'",
        order_by=[{"field_name": "metrics.accuracy", "ascending": False}],
    ) == ["b", "c"]
    assert names(filter_string="status = 'READY'") == ["b"]
    assert names(filter_string=f"source_run_id = '{run.info.run_id}' AND name LIKE '%a%'") == ["a"]
    assert names(order_by=[{"field_name": "name"}]) == ["a", "b", "c"]
    first = client.search_logged_models([experiment_id], max_results=2, order_by=[{"field_name": "name"}])
    second = client.search_logged_models(
        [experiment_id], max_results=2, order_by=[{"field_name": "name"}], page_token=first.token
    )
    assert [m.name for m in first] + [m.name for m in second] == ["a", "b", "c"] and second.token is None
    with pytest.raises(MlflowException, match="position") as error:
        names(filter_string="metrics.accuracy >")
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"


def test_search_on_datasets_alone_finds_the_models_with_a_metric_on_one_of_them(client, experiment_id):
    train = mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2]}), name="train")
    test = mlflow.data.from_pandas(pd.DataFrame({"x": [3, 4, 5]}), name="test")
    with mlflow.start_run() as run:
        models = {
            name: client.create_logged_model(experiment_id, name=name, source_run_id=run.info.run_id).model_id
            for name in ("on-train", "on-test", "on-no-dataset", "without-metrics")
        }
        mlflow.log_metric("accuracy", 0.9, model_id=models["on-train"], dataset=train)
        mlflow.log_metric("loss", 0.3, model_id=models["on-test"], dataset=test)
        mlflow.log_metric("accuracy", 0.7, model_id=models["on-no-dataset"])

    def names(datasets, **kwargs):
        found = mlflow.search_logged_models([experiment_id], datasets=datasets, output_format="list", **kwargs)
        return sorted(model.name for model in found)

    assert names(None) == sorted(models)
    assert names([{"dataset_name": "train"}]) == ["on-train"]
    assert names([{"dataset_name": "train"}, {"dataset_name": "test"}]) == ["on-test", "on-train"]
    assert names([{"dataset_name": "train", "dataset_digest": train.digest}]) == ["on-train"]
    assert names([{"dataset_name": "train", "dataset_digest": test.digest}]) == []
    assert names([{"dataset_name": "test"}], filter_string="name LIKE 'on-%'") == ["on-test"]
    # A metric clause already asks for the metric on the datasets, as before.
    assert names([{"dataset_name": "train"}], filter_string="metrics.accuracy > 0.5") == ["on-train"]


def test_a_metric_filter_finds_a_model_by_any_point_it_logged_and_ordering_reads_the_latest(client, experiment_id):
    # MLflow's store joins a metric clause with every point of the key, not only the latest.
    train = mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2]}), name="train")
    test = mlflow.data.from_pandas(pd.DataFrame({"x": [3, 4, 5]}), name="test")
    with mlflow.start_run():
        ids = {
            name: client.create_logged_model(experiment_id, name=name).model_id for name in ("improved", "split", "c")
        }
        mlflow.log_metric("acc", 0.9, step=1, model_id=ids["improved"], timestamp=1_000)
        mlflow.log_metric("acc", 0.5, step=2, model_id=ids["improved"], timestamp=2_000)  # its latest
        mlflow.log_metric("acc", 0.95, model_id=ids["split"], dataset=train)
        mlflow.log_metric("acc", 0.3, model_id=ids["split"], dataset=test)
        mlflow.log_metric("acc", 0.6, model_id=ids["c"], dataset=test)

    def names(filter_string, **kwargs):
        return sorted(m.name for m in client.search_logged_models([experiment_id], filter_string, **kwargs))

    assert names("metrics.acc > 0.8") == ["improved", "split"]
    assert names("metrics.acc = 0.5") == ["improved"]
    assert names("metrics.acc != 0.5") == ["c", "improved", "split"]
    # Each comparison is matched on its own: 0.9 > 0.5 and 0.5 < 0.6 are two points of one model.
    assert names("metrics.acc > 0.5 AND metrics.acc < 0.6") == ["improved", "split"]
    # Named datasets narrow the points compared.
    on_test = [{"dataset_name": "test", "dataset_digest": test.digest}]
    assert names("metrics.acc > 0.8", datasets=on_test) == []
    assert names("metrics.acc < 0.5", datasets=on_test) == ["split"]
    by_latest = client.search_logged_models(
        [experiment_id],
        "metrics.acc >= 0.5 AND name != 'split'",
        order_by=[{"field_name": "metrics.acc", "ascending": False}],
    )
    assert [m.name for m in by_latest] == ["c", "improved"]  # 0.6, then improved's latest 0.5


def test_in_and_not_in_work_on_every_string_field(client, experiment_id):
    with mlflow.start_run() as run:
        a = client.create_logged_model(
            experiment_id, name="a", source_run_id=run.info.run_id, model_type="clf", tags={"release": "v1.0"}
        )
        client.create_logged_model(
            experiment_id, name="b", model_type="reg", tags={"release": "v1.1"}, params={"k": "y"}
        )
        client.create_logged_model(experiment_id, name="c", tags={"release": "v2"}, params={"k": "x"})
    client.finalize_logged_model(a.model_id, LoggedModelStatus.READY)

    def names(filter_string):
        return sorted(m.name for m in client.search_logged_models([experiment_id], filter_string))

    assert names("tags.release IN ('v1.0', 'v1.1')") == ["a", "b"]  # the example in MLflow's docstring
    assert names("tags.release NOT IN ('v1.0', 'v1.1')") == ["c"]
    assert names("name in ('a', 'c')") == ["a", "c"]
    assert names("name not in ('a')") == ["b", "c"]
    assert names("model_type IN ('clf', 'reg')") == ["a", "b"]
    assert names("params.k IN ('x')") == ["c"]
    assert names("params.k NOT IN ('x')") == ["b"]  # a model without the param never matches
    assert names(f"model_id NOT IN ('{a.model_id}') AND name IN ('a', 'b')") == ["b"]
    assert names("status IN ('READY', 'LOGGED_MODEL_UPLOAD_FAILED')") == ["a"]
    # A Python tuple's text, as MLflow reads it with ast.literal_eval.
    assert names(f"name IN {tuple(['a'])}") == ["a"]
    assert names(f"name IN {tuple()}") == []
    assert names(f"name NOT IN {tuple()}") == ["a", "b", "c"]
    with pytest.raises(MlflowException, match="position 8") as error:
        names("name IN 'a'")
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="an operator for metrics.acc"):
        names("metrics.acc IN ('1')")


def test_a_status_filter_takes_the_name_or_the_code_mlflows_store_holds(client, experiment_id):
    # `mlflow server` keeps the status as an integer, so there only `status = '2'` matches; a
    # script written against it finds the same models here.
    ready = client.create_logged_model(experiment_id, name="ready")
    client.create_logged_model(experiment_id, name="pending")
    client.finalize_logged_model(ready.model_id, LoggedModelStatus.READY)

    def names(filter_string):
        return [m.name for m in client.search_logged_models([experiment_id], filter_string)]

    assert names("status = 'READY'") == names("status = 'LOGGED_MODEL_READY'") == names("status = '2'") == ["ready"]
    assert names("status = 'PENDING'") == names("status = '1'") == ["pending"]


def test_a_max_results_past_the_page_limit_is_served_in_pages_the_client_follows(
    client, experiment_id, tracking_uri, monkeypatch
):
    for index in range(5):
        client.create_logged_model(experiment_id, name=f"m{index}")
    order = [{"field_name": "name"}]

    def names(**kwargs):
        return [
            m.name for m in mlflow.search_logged_models([experiment_id], order_by=order, output_format="list", **kwargs)
        ]

    assert names(max_results=2000) == ["m0", "m1", "m2", "m3", "m4"]  # was a 400: "between 1 and 1000"
    monkeypatch.setattr(logged_models_api, "SEARCH_MAX_RESULTS", 2)
    assert names(max_results=4) == ["m0", "m1", "m2", "m3"]  # two pages of two, as one page of four
    assert names() == ["m0", "m1", "m2", "m3", "m4"]
    first = client.search_logged_models([experiment_id], max_results=4, order_by=order)
    assert [m.name for m in first] == ["m0", "m1"] and first.token
    rest = client.search_logged_models([experiment_id], max_results=4, order_by=order, page_token=first.token)
    assert [m.name for m in rest] == ["m2", "m3"]

    search = f"{tracking_uri}/api/2.0/mlflow/logged-models/search"
    for max_results in (0, 100_000, 2**63 - 1):  # mlflow server reads 0 as its default
        response = requests.post(search, json={"experiment_ids": [experiment_id], "max_results": max_results})
        assert response.status_code == 200 and len(response.json()["models"]) == 2
    response = requests.post(search, json={"experiment_ids": [experiment_id], "max_results": -1})
    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_log_input_shows_on_get_run_with_its_context_and_on_search(experiment_id):
    frame = pd.DataFrame({"feature": [0.1, 0.2, 0.3], "label": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(frame, source="s3://bucket/train.csv", name="train", targets="label")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_input(dataset, context="training")  # again: one input

    inputs = mlflow.get_run(run.info.run_id).inputs
    assert len(inputs.dataset_inputs) == 1
    logged = inputs.dataset_inputs[0]
    assert (logged.dataset.name, logged.dataset.digest) == ("train", dataset.digest)
    assert logged.dataset.source_type == "s3" and "train.csv" in logged.dataset.source
    assert "feature" in logged.dataset.schema and logged.dataset.profile
    assert {(t.key, t.value) for t in logged.tags} == {("mlflow.data.context", "training")}
    found = MlflowClient().search_runs([experiment_id])[0]
    assert found.inputs.dataset_inputs[0].dataset.digest == dataset.digest


def test_search_runs_finds_runs_by_the_name_digest_and_context_of_their_datasets(experiment_id):
    frame = pd.DataFrame({"feature": [0.1, 0.2, 0.3], "label": [0, 1, 0]})
    train = mlflow.data.from_pandas(frame, name="train")
    test = mlflow.data.from_pandas(frame.head(2), name="test")
    with mlflow.start_run(run_name="trained-and-tested"):
        mlflow.log_input(train, context="training")
        mlflow.log_input(test, context="evaluation")
    with mlflow.start_run(run_name="trained"):
        mlflow.log_input(train, context="training")
    with mlflow.start_run(run_name="no-data"):
        mlflow.log_param("p", 1)

    def run_names(filter_string):
        found = mlflow.search_runs([experiment_id], filter_string=filter_string, output_format="list")
        return sorted(run.info.run_name for run in found)

    assert run_names("datasets.name = 'train'") == ["trained", "trained-and-tested"]
    assert run_names("dataset.name IN ('test')") == ["trained-and-tested"]
    assert run_names(f"datasets.digest = '{test.digest}'") == ["trained-and-tested"]
    assert run_names("datasets.context = 'evaluation'") == ["trained-and-tested"]
    assert run_names("datasets.name LIKE 'tr%' AND attributes.run_name != 'trained'") == ["trained-and-tested"]
    with pytest.raises(MlflowException, match="Invalid dataset key 'rows'"):
        run_names("datasets.rows = '3'")


def test_outputs_and_model_inputs_show_on_the_run(client, experiment_id):
    with mlflow.start_run() as producer:
        model = client.create_logged_model(experiment_id, name="m", source_run_id=producer.info.run_id)
        client.log_outputs(producer.info.run_id, [mlflow.entities.LoggedModelOutput(model.model_id, step=3)])
    with mlflow.start_run() as consumer:
        client.log_inputs(consumer.info.run_id, models=[mlflow.entities.LoggedModelInput(model.model_id)])

    outputs = client.get_run(producer.info.run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(model.model_id, 3)]
    assert [i.model_id for i in client.get_run(consumer.info.run_id).inputs.model_inputs] == [model.model_id]


def test_unknown_models_and_bad_input_get_mlflow_json_errors(client, experiment_id, tracking_uri):
    with pytest.raises(MlflowException) as error:
        client.get_logged_model("m-" + "0" * 32)
    assert error.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException, match="Invalid model name") as error:
        client.create_logged_model(experiment_id, name="a/b")
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    with mlflow.start_run() as run:
        with pytest.raises(MlflowException) as error:
            mlflow.log_metric("acc", 1.0, model_id="m-" + "f" * 32)
    assert error.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert not Metric.objects.filter(run__run_id=run.info.run_id).exists()

    api = f"{tracking_uri}/api/2.0/mlflow"
    response = requests.post(f"{api}/runs/log-inputs", json={"run_id": run.info.run_id, "datasets": [{"dataset": {}}]})
    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    response = requests.put(f"{api}/logged-models/m-1", json={})
    assert response.status_code == 405 and response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    response = requests.patch(f"{api}/logged-models/m-1", json={"status": "LOGGED_MODEL_READY"})
    assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert not LoggedModelMetric.objects.exists()


def test_the_fluent_model_calls_work(experiment_id):
    with mlflow.start_run() as run:
        external = mlflow.create_external_model(name="served-elsewhere", params={"k": "v"}, model_type="agent")
        mlflow.set_logged_model_tags(external.model_id, {"team": "nlp"})
        mlflow.log_model_params({"temperature": "0.2"}, model_id=external.model_id)
        mlflow.log_metrics({"quality": 0.8}, model_id=external.model_id)

    assert mlflow.last_logged_model().model_id == external.model_id
    fetched = mlflow.get_logged_model(external.model_id)
    assert fetched.source_run_id == run.info.run_id and fetched.model_type == "agent"
    assert fetched.params == {"k": "v", "temperature": "0.2"} and fetched.tags["team"] == "nlp"
    assert [m.key for m in fetched.metrics] == ["quality"]
    frame = mlflow.search_logged_models(filter_string="model_type = 'agent'")
    assert list(frame["model_id"]) == [external.model_id]
    listed = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")
    assert [m.name for m in listed] == ["served-elsewhere"]


def test_the_run_page_reads_a_numpy_datasets_tensor_schema_and_profile(experiment_id):
    # mlflow.data.from_numpy records its schema as tensor specs whose lists are JSON text inside
    # the JSON; the page showed that text raw.
    features = np.arange(10.0).reshape(5, 2)
    dataset = mlflow.data.from_numpy(features, targets=np.array([0, 1, 0, 1, 1]), name="arrays")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")

    page = Client().get(f"/runs/{run.info.run_id}/")  # this module's `client` is mlflow's
    shown = rows(page.content.decode(), "data-dataset")["arrays"]

    assert "features: float64 [-1, 2], targets: int64 [-1]" in shown
    assert "features_shape [5, 2]" in shown and "targets_shape [5]" in shown  # the profile
    assert "tensorspec" not in shown
