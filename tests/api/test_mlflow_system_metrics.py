"""A sweep logged with MLflow's system metrics on (`start_run(log_system_metrics=True)`, psutil
sampling the machine on the client's own thread): Runtree stores the machine's metrics with the
run, and the parent's best-child tags are of the model's metrics only."""

import time

import mlflow
import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.usefixtures("tracking_uri")


@pytest.fixture
def fast_sampling():
    mlflow.set_system_metrics_sampling_interval(0.2)
    mlflow.set_system_metrics_samples_before_logging(1)
    yield
    mlflow.set_system_metrics_sampling_interval(None)
    mlflow.set_system_metrics_samples_before_logging(None)


def test_a_sweep_with_system_metrics_keeps_them_and_names_its_best_child_by_the_models(fast_sampling):
    mlflow.set_experiment("system-metrics")
    with mlflow.start_run(run_name="sweep") as parent:
        for lr in (0.1, 0.01, 0.001):
            with mlflow.start_run(run_name=f"lr={lr}", nested=True, log_system_metrics=True):
                mlflow.log_param("lr", lr)
                mlflow.log_metric("val_loss", lr * 10)
                time.sleep(1.0)  # a few samples of the machine

    client = MlflowClient()
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 3
    for child in children:
        assert "system/cpu_utilization_percentage" in child.data.metrics
        history = client.get_metric_history(child.info.run_id, "system/cpu_utilization_percentage")
        assert len(history) >= 2

    best_tags = {
        key: value
        for key, value in client.get_run(parent.info.run_id).data.tags.items()
        if key.startswith("runtree.best.")
    }
    assert best_tags["runtree.best.val_loss"] == "0.01"
    best_child = next(child for child in children if child.data.params["lr"] == "0.001")
    assert best_tags["runtree.best.val_loss.run_id"] == best_child.info.run_id
    assert not [key for key in best_tags if "system/" in key]
