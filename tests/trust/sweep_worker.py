"""One process of a concurrent sweep (tests/trust/test_concurrency.py): a worker of a
distributed hyperparameter search, logging trials under a parent run that all workers share,
through the ordinary mlflow client. Imported by spawned processes, so it imports no Django."""

import os

# What each worker logs, which the test counts afterwards.
TRIALS = 5
STEPS = 4
CHILD_PARAMS = ("lr", "batch_size", "worker")
CHILD_TAGS = ("worker",)
BATCH_METRICS = ("accuracy", "f1")
SHARED_PARAM = ("search_space", "lr in [1e-4, 1e-1], batch_size in {32, 64}")

_barrier = None


def start(tracking_uri: str, barrier) -> None:
    """Pool initializer: no retries, so any refused request fails the worker."""
    global _barrier
    _barrier = barrier
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "120"
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)


def join_experiment(experiment_name: str) -> str:
    """Every worker sets the experiment at the same instant: all but one find it being created."""
    import mlflow

    _barrier.wait()
    return mlflow.set_experiment(experiment_name).experiment_id


def log_sweep(worker: int, experiment_name: str, parent_run_id: str) -> int:
    import mlflow

    # Again: when mlflow's set_experiment loses the race to create, it returns the experiment
    # without making it the active one (mlflow/tracking/fluent.py), and runs would go to "Default".
    mlflow.set_experiment(experiment_name)
    _barrier.wait()
    with mlflow.start_run(run_id=parent_run_id):
        mlflow.log_param(*SHARED_PARAM)  # the same value from every worker: not a change
        for trial in range(TRIALS):
            lr = 10 ** -(1 + (worker + trial) % 4)
            with mlflow.start_run(run_name=f"worker-{worker}-trial-{trial}", nested=True):
                mlflow.log_params({"lr": lr, "batch_size": 32 * (1 + trial % 2), "worker": worker})
                for step in range(STEPS):
                    mlflow.log_metric("loss", 1 / (1 + step + lr), step=step)
                mlflow.log_metrics({"accuracy": 0.5 + trial / 100, "f1": 0.4 + worker / 100})
                mlflow.set_tag("worker", str(worker))
            # Progress on the shared parent: every worker writes the same key of the same run.
            mlflow.log_metric("trials_done", worker * 100 + trial, step=worker * 100 + trial)
        mlflow.set_tag(f"worker.{worker}", "done")
    return worker
