"""What an MLflow 3 training script does beyond logging values, through the real client against a
live Runtree, each read back as the script would: scikit-learn autologging of a grid search,
`mlflow.models.evaluate`, tables and other logged objects, resuming and searching runs. Each
scenario was compared field by field with what `mlflow server` 3.x answers the same script."""

import json
import math

import matplotlib
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

matplotlib.use("Agg")  # no display: render to files
from matplotlib import pyplot  # noqa: E402 (after choosing the backend)

pytestmark = pytest.mark.usefixtures("tracking_uri")


@pytest.fixture
def iris():
    features, target = load_iris(return_X_y=True, as_frame=True)
    return features.iloc[::3], target.iloc[::3]  # 50 rows, every class


def test_an_autologged_grid_search_logs_its_best_combinations_as_children_of_one_parent(iris, monkeypatch):
    # Autolog logs the child runs from a thread beside the main one: on the tests' in-memory
    # SQLite a write may get a 503, which the client retries as it does by default.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    features, target = iris
    experiment_id = mlflow.set_experiment("grid").experiment_id
    mlflow.sklearn.autolog(max_tuning_runs=2)
    try:
        search = GridSearchCV(SVC(), {"C": [0.1, 10], "kernel": ["linear", "rbf"]}, cv=2)
        with mlflow.start_run() as parent:
            search.fit(features, target)
    finally:
        mlflow.sklearn.autolog(disable=True)

    client = MlflowClient()
    parent_id = parent.info.run_id
    run = client.get_run(parent_id)
    assert run.data.params["best_C"] == str(search.best_params_["C"])
    assert run.data.params["best_kernel"] == search.best_params_["kernel"]
    assert run.data.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert run.data.tags["estimator_class"] == "sklearn.model_selection._search.GridSearchCV"
    [dataset] = run.inputs.dataset_inputs
    assert {tag.key: tag.value for tag in dataset.tags} == {"mlflow.data.context": "train"}
    assert json.loads(dataset.dataset.profile) == {"num_rows": 50, "num_elements": 200}

    # Only the best max_tuning_runs combinations become children, each with its own scores.
    children = mlflow.search_runs(
        experiment_ids=[experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    assert len(children) == 2
    assert {"params.C", "params.kernel", "metrics.mean_test_score", "tags.estimator_name"} <= set(children.columns)
    assert sorted(children["metrics.rank_test_score"]) == [1.0, 2.0]
    assert set(children["tags.estimator_name"]) == {"SVC"}
    assert set(children["tags.mlflow.autologging"]) == {"sklearn"}
    best = children.loc[children["metrics.rank_test_score"] == 1.0].iloc[0]
    assert (best["params.C"], best["params.kernel"]) == (str(search.best_params_["C"]), search.best_params_["kernel"])

    # Every combination is in cv_results.csv, and the best estimator is a model that loads back.
    artifacts = {f.path for f in client.list_artifacts(parent_id)}
    assert {"cv_results.csv", "estimator.html", "training_confusion_matrix.png"} <= artifacts
    cv_results = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=parent_id, artifact_path="cv_results.csv"))
    assert len(cv_results) == 4 and "mean_test_score" in cv_results.columns
    models = {m.name: m for m in mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")}
    assert set(models) == {"model", "best_estimator"}
    assert {m.source_run_id for m in models.values()} == {parent_id}
    best_model = mlflow.sklearn.load_model(f"models:/{models['best_estimator'].model_id}")
    np.testing.assert_array_equal(best_model.predict(features), search.predict(features))


def test_evaluating_a_logged_classifier_logs_its_scores_plots_and_per_class_table(iris):
    features, target = iris
    experiment_id = mlflow.set_experiment("evaluate").experiment_id
    with mlflow.start_run() as started:
        info = mlflow.sklearn.log_model(
            LogisticRegression(max_iter=300).fit(features, target), name="model", input_example=features.iloc[:2]
        )
        result = mlflow.models.evaluate(
            info.model_uri, features.assign(label=target), targets="label", model_type="classifier"
        )

    client = MlflowClient()
    run = client.get_run(started.info.run_id)
    assert {"accuracy_score", "f1_score", "log_loss", "roc_auc", "example_count"} <= set(result.metrics)
    assert run.data.metrics == pytest.approx(result.metrics)
    assert {"confusion_matrix.png", "per_class_metrics.csv", "roc_curve_plot.png"} <= {
        f.path for f in client.list_artifacts(run.info.run_id)
    }
    confusion = mlflow.artifacts.load_image(result.artifacts["confusion_matrix"].uri)
    assert confusion.size[0] > 100
    per_class = pd.read_csv(mlflow.artifacts.download_artifacts(result.artifacts["per_class_metrics"].uri))
    assert len(per_class) == 3  # one row a class
    # The scores belong to the evaluated model too, on the evaluation dataset the run lists.
    [evaluated] = run.inputs.dataset_inputs
    scored = {m.key: m for m in client.get_logged_model(info.model_id).metrics}
    assert scored["accuracy_score"].value == result.metrics["accuracy_score"]
    assert scored["accuracy_score"].dataset_digest == evaluated.dataset.digest
    found = mlflow.search_runs([experiment_id], filter_string="metrics.accuracy_score >= 0.5", output_format="list")
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_evaluating_a_regressor_logs_its_error_metrics():
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    features, target = features.iloc[:80], target.iloc[:80]
    mlflow.set_experiment("evaluate")
    with mlflow.start_run() as started:
        info = mlflow.sklearn.log_model(Ridge().fit(features, target), name="reg", input_example=features.iloc[:2])
        result = mlflow.evaluate(info.model_uri, features.assign(y=target), targets="y", model_type="regressor")

    metrics = MlflowClient().get_run(started.info.run_id).data.metrics
    assert {"r2_score", "mean_absolute_error", "root_mean_squared_error", "max_error"} <= set(metrics)
    assert metrics == pytest.approx(result.metrics)


def test_logged_tables_and_objects_load_back_as_logged():
    frame = pd.DataFrame({"epoch": [1, 2, 3], "label": ["cat", "dog", "cat"], "loss": [0.5, np.nan, 0.25]})
    experiment_id = mlflow.set_experiment("tables").experiment_id
    with mlflow.start_run() as first:
        mlflow.log_table(data=frame, artifact_file="predictions.json")
        mlflow.log_table(data={"word": ["hi", "there"]}, artifact_file="text/words.json")
        mlflow.log_dict({"layers": [64, 32], "dropout": None}, "config/model.json")
        mlflow.log_text("héllo\nworld", "notes/readme.txt")
        figure, axes = pyplot.subplots(figsize=(2, 2))
        axes.plot([1, 3, 2])
        mlflow.log_figure(figure, "plots/curve.png")
        pyplot.close(figure)
    with mlflow.start_run() as second:
        mlflow.log_table(data=frame.assign(epoch=frame.epoch + 10), artifact_file="predictions.json")

    run = mlflow.get_run(first.info.run_id)
    assert json.loads(run.data.tags["mlflow.loggedArtifacts"]) == [
        {"path": "predictions.json", "type": "table"},
        {"path": "text/words.json", "type": "table"},
    ]
    loaded = mlflow.load_table("predictions.json", run_ids=[first.info.run_id])
    pd.testing.assert_frame_equal(loaded, frame)
    # Without run ids, load_table finds the runs by their mlflow.loggedArtifacts tag.
    both = mlflow.load_table("predictions.json", extra_columns=["run_id"])
    assert sorted(both["epoch"]) == [1, 2, 3, 11, 12, 13]
    assert set(both.loc[both["epoch"] > 10, "run_id"]) == {second.info.run_id}
    assert mlflow.load_table("text/words.json", run_ids=[first.info.run_id])["word"].tolist() == ["hi", "there"]
    assert len(mlflow.search_runs([experiment_id], "tags.mlflow.loggedArtifacts LIKE '%predictions.json%'")) == 2

    base = first.info.artifact_uri
    assert mlflow.artifacts.load_dict(f"{base}/config/model.json") == {"layers": [64, 32], "dropout": None}
    assert mlflow.artifacts.load_text(f"runs:/{first.info.run_id}/notes/readme.txt") == "héllo\nworld"
    image = mlflow.artifacts.load_image(f"{base}/plots/curve.png")
    assert (image.size, image.mode) == ((200, 200), "RGBA")


def test_a_finished_run_resumes_logs_more_and_searches_in_metric_order():
    mlflow.set_experiment("resume")
    with mlflow.start_run(run_name="sweep") as parent:
        children = {}
        for name, score in (("low", 0.2), ("high", 0.9), ("mid", 0.5), ("diverged", math.nan), ("pending", None)):
            with mlflow.start_run(run_name=name, nested=True) as child:
                if score is not None:
                    mlflow.log_metric("score", score)
            children[name] = child.info.run_id
    assert mlflow.last_active_run().info.run_id == parent.info.run_id

    first_end = mlflow.get_run(children["low"]).info.end_time
    with mlflow.start_run(run_id=children["low"]):
        assert mlflow.get_run(children["low"]).info.status == "RUNNING"
        mlflow.log_metric("score", 0.95, step=1)
        mlflow.set_tag("resumed", "yes")
    resumed = mlflow.get_run(children["low"])
    assert (resumed.info.status, resumed.data.tags["resumed"]) == ("FINISHED", "yes")
    assert resumed.info.end_time >= first_end
    history = MlflowClient().get_metric_history(children["low"], "score")
    assert [(m.step, m.value) for m in history] == [(0, 0.2), (1, 0.95)]
    assert mlflow.last_active_run().info.run_id == children["low"]

    client = MlflowClient()
    assert client.get_parent_run(children["mid"]).info.run_id == parent.info.run_id
    assert client.get_parent_run(parent.info.run_id) is None

    top = mlflow.search_runs(order_by=["metrics.score DESC"], max_results=2, output_format="list")
    assert all(isinstance(run, Run) for run in top)
    assert [run.info.run_name for run in top] == ["low", "high"]  # low's latest score is 0.95
    # After the scores, in both directions, the run that logged NaN, then the runs that logged
    # no score at all, newest first: the order mlflow server gives.
    ranked = mlflow.search_runs(order_by=["metrics.score ASC"])
    assert ranked["tags.mlflow.runName"].tolist() == ["mid", "high", "low", "diverged", "pending", "sweep"]
    top = mlflow.search_runs(order_by=["metrics.score DESC"], max_results=4, output_format="list")
    assert [run.info.run_name for run in top] == ["low", "high", "mid", "diverged"]
    pages, token = [], None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id], order_by=["metrics.score DESC"], max_results=2, page_token=token
        )
        pages.append([run.info.run_name for run in page])
        if not (token := page.token):
            break
    assert pages == [["low", "high"], ["mid", "diverged"], ["pending", "sweep"]]


def test_a_registered_logged_model_lists_its_version_as_mlflow_server_writes_it():
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    mlflow.set_experiment("register")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            Ridge().fit(features.iloc[:50], target.iloc[:50]), name="model", registered_model_name="ridge"
        )
    tags = MlflowClient().get_logged_model(info.model_id).tags
    # The server's entry has the version as a number; the client's register_model then appends
    # its own with the version as a string.
    assert json.loads(tags["mlflow.modelVersions"]) == [
        {"name": "ridge", "version": 1},
        {"name": "ridge", "version": "1"},
    ]
