"""The seed course note's homework (`register_model.py`), with the real mlflow client, scikit-learn
and a live Runtree: a hyperparameter sweep whose children each log a model; the top 5 by the
validation metric; register the best; alias, stage and describe it; load it by alias and by
version; a second version; move the alias; rename; delete a version; search with LIKE."""

import json

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error

from registry.models import ModelVersion

pytestmark = pytest.mark.usefixtures("tracking_uri", "artifact_root")

ALPHAS = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]


def data():
    generator = np.random.default_rng(7)
    features = generator.normal(size=(120, 4))
    target = features @ np.array([1.5, -2.0, 0.5, 3.0]) + generator.normal(scale=0.3, size=120)
    return features[:80], target[:80], features[80:], target[80:]


def run_sweep() -> str:
    """The hpo.py step: a parent run, a child per alpha logging params, rmse and its model."""
    train_x, train_y, valid_x, valid_y = data()
    experiment = mlflow.set_experiment("random-forest-hyperopt")
    with mlflow.start_run(run_name="hpo") as parent:
        for alpha in ALPHAS:
            with mlflow.start_run(run_name=f"ridge-{alpha}", nested=True):
                model = Ridge(alpha=alpha).fit(train_x, train_y)
                mlflow.log_param("alpha", alpha)
                mlflow.log_metric("rmse", mean_squared_error(valid_y, model.predict(valid_x)) ** 0.5)
                mlflow.sklearn.log_model(model, name="model")
    return experiment.experiment_id, parent.info.run_id


def test_the_course_notes_register_model_flow(tracking_uri):
    experiment_id, parent_run_id = run_sweep()
    client = MlflowClient()
    _, _, valid_x, _ = data()

    # register_model.py: the top 5 children by the validation metric, the best registered.
    top = client.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        order_by=["metrics.rmse ASC"],
        max_results=5,
    )
    assert len(top) == 5
    assert [run.data.metrics["rmse"] for run in top] == sorted(run.data.metrics["rmse"] for run in top)
    best, runner_up = top[0], top[1]
    first = mlflow.register_model(f"runs:/{best.info.run_id}/model", "ridge-regressor")
    assert (first.version, first.status, first.run_id) == ("1", "READY", best.info.run_id)
    # The client found the run's logged model; the client's ModelVersion does not read model_id.
    assert ModelVersion.objects.get(version=1).model_id.startswith("m-")

    client.set_registered_model_alias("ridge-regressor", "champion", first.version)
    client.transition_model_version_stage("ridge-regressor", first.version, "Staging")
    client.update_registered_model("ridge-regressor", description="Ridge regression, best alpha of the sweep")
    client.update_model_version("ridge-regressor", first.version, description=f"rmse {best.data.metrics['rmse']:.3f}")

    # Loaded by alias and by version, it predicts what the run's own model predicts.
    expected = mlflow.pyfunc.load_model(f"runs:/{best.info.run_id}/model").predict(valid_x)
    by_alias = mlflow.pyfunc.load_model("models:/ridge-regressor@champion").predict(valid_x)
    by_version = mlflow.pyfunc.load_model("models:/ridge-regressor/1").predict(valid_x)
    np.testing.assert_allclose(by_alias, expected)
    np.testing.assert_allclose(by_version, expected)

    # A second version (registered from its logged model's URI), and the alias moves to it.
    runner_up_model = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{runner_up.info.run_id}'"
    )[0]
    second = mlflow.register_model(f"models:/{runner_up_model.model_id}", "ridge-regressor")
    assert (second.version, second.run_id) == ("2", runner_up.info.run_id)
    client.set_registered_model_alias("ridge-regressor", "champion", "2")
    moved = mlflow.pyfunc.load_model("models:/ridge-regressor@champion").predict(valid_x)
    np.testing.assert_allclose(moved, mlflow.pyfunc.load_model(f"runs:/{runner_up.info.run_id}/model").predict(valid_x))

    # Renamed, the versions follow; the first version is deleted; a LIKE search finds the model.
    client.rename_registered_model("ridge-regressor", "ridge-production")
    client.delete_model_version("ridge-production", "1")
    model = client.get_registered_model("ridge-production")
    assert model.description == "Ridge regression, best alpha of the sweep"
    assert model.aliases == {"champion": "2"}
    assert [v.version for v in client.search_model_versions("name = 'ridge-production'")] == ["2"]
    assert [m.name for m in client.search_registered_models("name LIKE 'ridge-%'")] == ["ridge-production"]
    with pytest.raises(MlflowException):
        client.get_registered_model("ridge-regressor")
    third = mlflow.register_model(f"runs:/{best.info.run_id}/model", "ridge-production")
    assert third.version == "3"  # 1 is never given again
    assert ModelVersion.objects.filter(registered_model__name="ridge-production").count() == 2


def test_log_model_with_registered_model_name_registers_a_version(tracking_uri):
    train_x, train_y, valid_x, _ = data()
    mlflow.set_experiment("register-on-log")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(Ridge().fit(train_x, train_y), name="model", registered_model_name="ridge")
    assert MlflowClient().get_model_version("ridge", "1").run_id == run.info.run_id
    assert ModelVersion.objects.get(registered_model__name="ridge", version=1).model_id == info.model_id
    # The logged model records the version it became (the server adds it, as MLflow's does, and
    # the client's register_model appends it once more, as against MLflow).
    tags = MlflowClient().get_logged_model(info.model_id).tags
    assert {"name": "ridge", "version": "1"} in json.loads(tags["mlflow.modelVersions"])
    loaded = mlflow.pyfunc.load_model("models:/ridge/latest").predict(valid_x)
    np.testing.assert_allclose(loaded, mlflow.pyfunc.load_model(info.model_uri).predict(valid_x))


def test_a_version_from_an_unknown_logged_model_is_refused(tracking_uri):
    client = MlflowClient()
    client.create_registered_model("ridge")
    with pytest.raises(MlflowException) as refused:
        client.create_model_version(
            "ridge", "models:/m-0123456789abcdef0123456789abcdef", model_id="m-0123456789abcdef0123456789abcdef"
        )
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert ModelVersion.objects.count() == 0
