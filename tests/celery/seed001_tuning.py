"""Seed 001 (MLflow's parent/child-run notebook): the challenge's tuning workload WITHOUT its
best-tracking code, so the server's summaries alone must say which child is best.

The seed's code as written, less the lines that track and log the best child, and its driver
wrapped in `run_workload()` without `mlflow.set_tracking_uri(...)` (the tests point the client
at a live Runtree). Not reformatted and not linted, so it stays close to the seed's text.
"""

# fmt: off
# ruff: noqa
import random
from functools import partial
from itertools import starmap

from more_itertools import consume

import mlflow


# Define a function to log parameters and metrics and add tag
# logging for search_runs functionality
def log_run(run_name, test_no, param1_choices, param2_choices, tag_ident):
    with mlflow.start_run(run_name=run_name, nested=True) as run:
        param1 = random.choice(param1_choices)
        param2 = random.choice(param2_choices)
        metric1 = random.uniform(0, 1)
        metric2 = abs(random.gauss(5, 2.5))

        mlflow.log_param("param1", param1)
        mlflow.log_param("param2", param2)
        mlflow.log_metric("metric1", metric1)
        mlflow.log_metric("metric2", metric2)
        mlflow.set_tag("test_identifier", tag_ident)

        return run.info.run_id, metric1, param1, param2


# Generate run names
def generate_run_names(test_no, num_runs=5):
    return (f"run_{i}_test_{test_no}" for i in range(num_runs))


# Execute tuning function, allowing for param overrides,
# run_name disambiguation, and tagging support
def execute_tuning(
    test_no,
    param1_choices=("a", "b", "c"),
    param2_choices=("d", "e", "f"),
    test_identifier="",
    num_child_runs=5,
):
    ident = "default" if not test_identifier else test_identifier
    # Use a parent run to encapsulate the child runs
    with mlflow.start_run(run_name=f"parent_run_test_{ident}_{test_no}"):
        # Partial application of the log_run function
        log_current_run = partial(
            log_run,
            test_no=test_no,
            param1_choices=param1_choices,
            param2_choices=param2_choices,
            tag_ident=ident,
        )
        mlflow.set_tag("test_identifier", ident)
        # Generate run names and apply log_current_run function to each run name
        results = list(
            starmap(
                log_current_run,
                ((run_name,) for run_name in generate_run_names(test_no, num_child_runs)),
            )
        )

        # Consume the iterator to execute the runs
        consume(results)


def run_workload(num_parents=5, num_child_runs=25):
    # Set the tracking uri and experiment
    mlflow.set_experiment("Parent Child Association Challenge")

    param_1_values = ["a", "b"]
    param_2_values = ["d", "f"]

    # Execute hyperparameter tuning runs with custom parameter choices
    consume(
        starmap(
            execute_tuning, ((x, param_1_values, param_2_values, "subset_test", num_child_runs) for x in range(num_parents))
        )
    )
