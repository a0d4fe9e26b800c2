"""Seed 001 (MLflow's parent/child-run notebook): tuning runs without child runs, run twice.

The seed's code, verbatim: its imports and functions as written, and its driver wrapped in
`run_workload()` without the line `mlflow.set_tracking_uri("http://localhost:8080")` (the
tests point the client at a live Runtree). Not reformatted and not linted, so it stays the
seed's text.
"""

# fmt: off
# ruff: noqa
import random
from functools import partial
from itertools import starmap

from more_itertools import consume

import mlflow


# Define a function to log parameters and metrics
def log_run(run_name, test_no):
    with mlflow.start_run(run_name=run_name):
        mlflow.log_param("param1", random.choice(["a", "b", "c"]))
        mlflow.log_param("param2", random.choice(["d", "e", "f"]))
        mlflow.log_metric("metric1", random.uniform(0, 1))
        mlflow.log_metric("metric2", abs(random.gauss(5, 2.5)))


# Generate run names
def generate_run_names(test_no, num_runs=5):
    return (f"run_{i}_test_{test_no}" for i in range(num_runs))


# Execute tuning function
def execute_tuning(test_no):
    # Partial application of the log_run function
    log_current_run = partial(log_run, test_no=test_no)
    # Generate run names and apply log_current_run function to each run name
    runs = starmap(log_current_run, ((run_name,) for run_name in generate_run_names(test_no)))
    # Consume the iterator to execute the runs
    consume(runs)


# The notebook's driver: five runs, then "What if we need to run this again?".
def run_workload():
    # Set the tracking uri and experiment
    mlflow.set_experiment("No Child Runs")

    # Execute 5 hyperparameter tuning runs
    consume(starmap(execute_tuning, ((x,) for x in range(5))))

    # What if we need to run this again?
    consume(starmap(execute_tuning, ((x,) for x in range(5))))
