"""Write services: every change to tracking data goes through here (keyword-only, typed, atomic).

validation.py (what a service accepts, one public check per MLflow rule), experiments.py,
runs.py, placement.py (a run's place in its tree; bulk linking). The public names are
re-exported here, so callers write `services.run_create(...)`.
"""

from tracker.services.experiments import (
    experiment_create,
    experiment_delete_tag,
    experiment_rename,
    experiment_set_lifecycle,
    experiment_set_tag,
)
from tracker.services.placement import MAX_DEPTH, experiment_link_parents
from tracker.services.runs import (
    generate_run_name,
    run_create,
    run_delete_tag,
    run_log_batch,
    run_log_metric,
    run_log_param,
    run_set_lifecycle,
    run_set_tag,
    run_update,
)
from tracker.services.validation import KeyValue, MetricInput

__all__ = [
    "MAX_DEPTH",
    "KeyValue",
    "MetricInput",
    "experiment_create",
    "experiment_delete_tag",
    "experiment_link_parents",
    "experiment_rename",
    "experiment_set_lifecycle",
    "experiment_set_tag",
    "generate_run_name",
    "run_create",
    "run_delete_tag",
    "run_log_batch",
    "run_log_metric",
    "run_log_param",
    "run_set_lifecycle",
    "run_set_tag",
    "run_update",
]
