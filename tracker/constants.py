"""Names and limits every room of the tracking domain shares: MLflow's reserved tags, Runtree's
own `runtree.*` tags, MLflow's limits and its key and run-id patterns. One home each, so the
write services, the filter language, the summaries and the pages agree.

This module imports nothing from the project: anything may import it.
"""

import re

# --- MLflow's reserved tags (mlflow/utils/mlflow_tags.py) ------------------------------------

PARENT_RUN_ID_TAG = "mlflow.parentRunId"
ROOT_RUN_ID_TAG = "mlflow.rootRunId"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
NOTE_TAG = "mlflow.note.content"
LOGGED_MODEL_HISTORY_TAG = "mlflow.log-model.history"
SOURCE_NAME_TAG = "mlflow.source.name"  # the script that logged the run
# Set by mlflow.log_image(image, key=..., step=...): the run has images in its `images/` folder.
LOGGED_IMAGES_TAG = "mlflow.loggedImages"
# The input tag that says what a run used a dataset for: training, validation, ...
DATASET_CONTEXT_TAG = "mlflow.data.context"

# --- Runtree's own tags ------------------------------------------------------------------------

# Tags in this namespace are written by Runtree itself (best-child summaries); clients read them.
RESERVED_TAG_PREFIX = "runtree."
# An experiment tag runtree.goal.<metric> = "min" | "max" (tracker/goals.py reads it).
GOAL_TAG_PREFIX = f"{RESERVED_TAG_PREFIX}goal."
# The read-only tags the MLflow API shows on a parent: runtree.best.<metric>, .run_id, .params.<param>.
BEST_TAG_PREFIX = f"{RESERVED_TAG_PREFIX}best."

# --- MLflow's system metrics ------------------------------------------------------------------

# `mlflow.start_run(log_system_metrics=True)` (or MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING) logs the
# machine's CPU, memory, disk, network and GPU use under this prefix every few seconds
# (mlflow/system_metrics/system_metrics_monitor.py). They describe the machine, not the model:
# no child is "best" by them, they are no param's outcome, and the pages list them after the
# model's metrics rather than among them (MLflow's UI keeps them apart too).
SYSTEM_METRIC_PREFIX = "system/"


def is_system_metric(key: str) -> bool:
    return key.startswith(SYSTEM_METRIC_PREFIX)


def model_metrics_first(keys) -> list[str]:
    """`keys` sorted by name, the system metrics after the others."""
    return sorted(keys, key=lambda key: (is_system_metric(key), key))


# --- MLflow's limits (mlflow/utils/validation.py), and Runtree's own bound on a value ----------

MAX_KEY_LENGTH = 250
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_RUN_NAME_LENGTH = 500
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTRIES = 1000
# MLflow truncates param values at 6,000 and tag values at 8,000 characters and loses the rest.
# Runtree stores values whole, up to this bound, and refuses anything larger outright.
MAX_VALUE_BYTES = 1024 * 1024

# --- patterns ------------------------------------------------------------------------------------

# The same key rule as MLflow: letters, digits, and _ - . space / :
KEY_PATTERN = re.compile(r"^[/\w.\- :]+$")
# MLflow's run ids are 32 hex characters; other servers' ids are taken if they fit the column.
RUN_ID_PATTERN = re.compile(r"[0-9a-zA-Z_\-]{1,32}")
