"""What an everyday scikit-learn script does with MLflow 3, through the real client against a
live Runtree: `log_model`, `load_model` by `models:/<model_id>` and `runs:/<run_id>/model`,
autologging a small sweep. Each checked by what the user gets back."""

from collections import Counter

import mlflow
import mlflow.data
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pytest
from django.test import Client
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV

from tracker.models import LoggedModel, Metric

pytestmark = pytest.mark.usefixtures("tracking_uri")


@pytest.fixture
def data():
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    return features.iloc[:120], target.iloc[:120]


def test_a_logged_model_loads_back_by_model_id_and_by_run_and_predicts_the_same(data):
    features, target = data
    mlflow.set_experiment("sklearn")
    original = Ridge(alpha=0.5).fit(features, target)
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", 0.5)
        info = mlflow.sklearn.log_model(original, name="model", input_example=features.iloc[:3])

    expected = original.predict(features)
    by_id = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_allclose(by_id.predict(features), expected)
    np.testing.assert_allclose(by_run.predict(features), expected)
    np.testing.assert_allclose(mlflow.sklearn.load_model(f"models:/{info.model_id}").predict(features), expected)

    model = MlflowClient().get_logged_model(info.model_id)
    assert model.status == LoggedModelStatus.READY
    assert (model.name, model.source_run_id, model.params) == ("model", run.info.run_id, {"alpha": "0.5"})
    outputs = mlflow.get_run(run.info.run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(info.model_id, 0)]
    files = {f.path for f in MlflowClient().list_logged_model_artifacts(info.model_id)}
    assert {"MLmodel", "requirements.txt"} <= files and any(name.startswith("model.") for name in files)


def test_log_model_relogs_the_runs_metrics_for_the_model_without_duplicating_them(data):
    features, target = data
    mlflow.set_experiment("sklearn")
    with mlflow.start_run() as run:
        for step in range(3):
            mlflow.log_metric("rmse", 10.0 - step, step=step)
        first = mlflow.sklearn.log_model(Ridge().fit(features, target), name="first", step=2)
        second = mlflow.sklearn.log_model(Ridge(alpha=2).fit(features, target), name="second", step=2)

    history = MlflowClient().get_metric_history(run.info.run_id, "rmse")
    assert [(m.step, m.value) for m in history] == [(0, 10.0), (1, 9.0), (2, 8.0)]
    assert Metric.objects.filter(run__run_id=run.info.run_id).count() == 3
    # Each model logged at step 2 has the run's metric of that step as its own.
    for info in (first, second):
        metrics = MlflowClient().get_logged_model(info.model_id).metrics
        assert [(m.key, m.value, m.step, m.run_id) for m in metrics] == [("rmse", 8.0, 2, run.info.run_id)]


def test_an_autologged_sweep_keeps_its_training_metrics_and_logs_its_models(data, monkeypatch):
    # Autolog logs the child runs from a thread beside the main one. The tests' SQLite database
    # is in memory with a shared cache, whose table locks fail at once rather than wait (a file
    # database waits out its busy timeout): a write may get a 503, and the client retries it as
    # it does by default. A retry stores each point once, which the end of the test checks.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    features, target = data
    mlflow.set_experiment("autolog")
    mlflow.sklearn.autolog(log_input_examples=False, log_model_signatures=True, max_tuning_runs=3)
    try:
        search = GridSearchCV(Ridge(), {"alpha": [0.1, 1.0, 10.0]}, cv=2)
        with mlflow.start_run() as parent:
            search.fit(features, target)
    finally:
        mlflow.sklearn.autolog(disable=True)

    client = MlflowClient()
    parent_run = client.get_run(parent.info.run_id)
    assert "training_score" in parent_run.data.metrics
    assert parent_run.data.params["best_alpha"] in ("0.1", "1.0", "10.0")
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 3 and all("mean_test_score" in child.data.metrics for child in children)
    artifacts = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert {"estimator.html", "cv_results.csv"} <= artifacts
    models = client.search_logged_models([parent.info.experiment_id])
    assert {m.source_run_id for m in models} == {parent.info.run_id}
    assert all(m.status == LoggedModelStatus.READY for m in models)
    # The best estimator loads back and predicts like the fitted search.
    best = next(m for m in models if m.name == "best_estimator")
    np.testing.assert_allclose(
        mlflow.pyfunc.load_model(f"models:/{best.model_id}").predict(features), search.predict(features)
    )
    points = Metric.objects.filter(run__run_id=parent.info.run_id).values_list("key", "step", "timestamp", "value")
    assert max(Counter(points).values()) == 1
    assert LoggedModel.objects.filter(source_run__run_id=parent.info.run_id).count() == len(models)


def test_a_sweep_of_logged_models_reads_on_the_model_pages_by_their_metrics_per_dataset(data):
    # MLflow 3's model-centric pattern: each trial logs its model, then its scores on the train
    # and test sets linked to that model. The experiment's models page compares them.
    features, target = data
    train = mlflow.data.from_pandas(features.iloc[:80].assign(y=target.iloc[:80]), targets="y", name="train")
    test = mlflow.data.from_pandas(features.iloc[80:].assign(y=target.iloc[80:]), targets="y", name="test")
    experiment_id = mlflow.set_experiment("model pages").experiment_id
    infos = {}
    with mlflow.start_run(run_name="sweep") as sweep:
        for alpha in (0.01, 1.0, 100.0):
            with mlflow.start_run(run_name=f"alpha={alpha}", nested=True):
                fitted = Ridge(alpha=alpha).fit(features.iloc[:80], target.iloc[:80])
                info = mlflow.sklearn.log_model(fitted, name="ridge", input_example=features.iloc[:2])
                for dataset, rows in ((train, slice(None, 80)), (test, slice(80, None))):
                    score = fitted.score(features.iloc[rows], target.iloc[rows])
                    mlflow.log_metric("r2", score, model_id=info.model_id, dataset=dataset)
                infos[alpha] = (info, fitted.score(features.iloc[80:], target.iloc[80:]))

    pages = Client()
    listing = pages.get(f"/experiments/{experiment_id}/models/?sort=-metrics.r2&on=test").context["listing"]
    assert [(column.key, column.dataset_name) for column in listing.columns] == [("r2", "test"), ("r2", "train")]
    best_first = sorted(infos.values(), key=lambda pair: -pair[1])
    assert [row.model.model_id for row in listing.rows] == [info.model_id for info, _ in best_first]
    assert [round(row.cells[0].value, 6) for row in listing.rows] == [round(score, 6) for _, score in best_first]

    # The sweep's best child by test score, read by the client off the parent's best-child tags:
    # each trial's latest r2 is its train score (logged last), so a best of it mixed the two.
    best_tags = MlflowClient().get_run(sweep.info.run_id).data.tags
    best_on_test = max(infos.values(), key=lambda pair: pair[1])[0]
    assert best_tags["runtree.best.r2 · test.run_id"] == best_on_test.run_id
    assert float(best_tags["runtree.best.r2 · test"]) == pytest.approx(max(score for _, score in infos.values()))
    assert "runtree.best.r2" not in best_tags
    compared = pages.get("/compare/", {"parent": sweep.info.run_id}).context["comparison"]
    assert compared.metric_keys == ["r2 · test", "r2 · train"]

    info, score = infos[1.0]
    html = pages.get(f"/experiments/{experiment_id}/models/{info.model_id}/").content.decode()
    assert "sklearn " in html and f"models:/{info.model_id}" in html
    signature = html.split('id="signature-heading"')[1]
    assert all(f"{column}: double" in signature for column in features.columns)  # the real MLmodel's inputs
    assert 'data-metric="r2"' in html and ">test<" in html.replace(" ", "")
    assert "MLmodel" in html.split('id="artifacts-heading"')[1]
