"""What the write services accept, and MLflow's rules for it: one public check per rule, raising
InvalidParameterValue. The services and the importer both call these."""

from dataclasses import dataclass

from tracker.constants import (
    GOAL_TAG_PREFIX,
    KEY_PATTERN,
    MAX_EXPERIMENT_NAME_LENGTH,
    MAX_KEY_LENGTH,
    MAX_RUN_NAME_LENGTH,
    MAX_VALUE_BYTES,
    RESERVED_TAG_PREFIX,
    ROOT_RUN_ID_TAG,
    RUN_ID_PATTERN,
)
from tracker.errors import InvalidParameterValue
from tracker.goals import GOAL_VALUES
from tracker.models import ACTIVE, Experiment, Metric, Run, RunStatus


@dataclass(frozen=True)
class MetricInput:
    key: str
    value: float
    timestamp: int
    step: int = 0
    # MLflow 3: the logged model and dataset the value was measured for (None: not said).
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str


def check_key(key, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidParameterValue(f"{what} key must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidParameterValue(
            f"{what} key '{key[:40]}...' is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}"
        )
    if not KEY_PATTERN.match(key) or ".." in key.split("/") or key.startswith("/"):
        raise InvalidParameterValue(
            f"Invalid {what.lower()} key {key!r}: keys may contain only letters, digits, "
            "underscores, dashes, periods, spaces, colons and slashes"
        )
    return key


def check_text_value(value, what: str, key: str) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidParameterValue(f"{what} '{key}' value must be a string, got {type(value).__name__}")
        value = str(value)
    size = len(value.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise InvalidParameterValue(
            f"{what} '{key}' value is {size} bytes; Runtree stores values in full up to {MAX_VALUE_BYTES} bytes"
        )
    return value


def check_metric(metric: MetricInput) -> MetricInput:
    key = check_key(metric.key, "Metric")
    value = metric.value
    if isinstance(value, str):
        # MLflow's JSON carries NaN and infinities as strings.
        try:
            value = float(value)
        except ValueError:
            raise InvalidParameterValue(f"Metric '{key}' value {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterValue(f"Metric '{key}' value must be a number, got {type(value).__name__}")
    timestamp = check_integer(metric.timestamp, f"Metric '{key}' timestamp")
    step = check_integer(metric.step if metric.step is not None else 0, f"Metric '{key}' step")
    return MetricInput(
        key=key,
        value=float(value),
        timestamp=timestamp,
        step=step,
        model_id=check_optional_text(metric.model_id, f"Metric '{key}' model_id", _MAX_MODEL_ID_LENGTH),
        dataset_name=check_optional_text(metric.dataset_name, f"Metric '{key}' dataset_name", _MAX_DATASET_NAME),
        dataset_digest=check_optional_text(
            metric.dataset_digest, f"Metric '{key}' dataset_digest", _MAX_DATASET_DIGEST
        ),
    )


_MAX_MODEL_ID_LENGTH = Metric._meta.get_field("model_id").max_length
_MAX_DATASET_NAME = Metric._meta.get_field("dataset_name").max_length
_MAX_DATASET_DIGEST = Metric._meta.get_field("dataset_digest").max_length


def check_optional_text(value, what: str, limit: int) -> str | None:
    """An optional short string: None or '' is "not given" (protobuf's unset field)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParameterValue(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidParameterValue(f"{what} is {len(value)} characters long; the limit is {limit}")
    return value


def check_integer(value, what: str) -> int:
    if isinstance(value, bool):
        raise InvalidParameterValue(f"{what} must be an integer, got a boolean")
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise InvalidParameterValue(f"{what} must be an integer, got {value!r}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise InvalidParameterValue(f"{what} must be an integer, got {value!r}")
    if not -(2**63) <= value < 2**63:
        raise InvalidParameterValue(f"{what} {value} is out of the 64-bit range")
    return value


def check_user_id(user_id: str) -> str:
    limit = Run._meta.get_field("user_id").max_length
    if len(user_id) > limit:
        raise InvalidParameterValue(f"User id is {len(user_id)} characters long; the limit is {limit}")
    return user_id


def check_run_name(name) -> str:
    if name is None:
        return ""
    if not isinstance(name, str):
        raise InvalidParameterValue(f"Run name must be a string, got {type(name).__name__}")
    if len(name) > MAX_RUN_NAME_LENGTH:
        raise InvalidParameterValue(f"Run name is {len(name)} characters long; the limit is {MAX_RUN_NAME_LENGTH}")
    return name


def check_experiment_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterValue("Experiment name must be a non-empty string")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Experiment name is {len(name)} characters long; the limit is {MAX_EXPERIMENT_NAME_LENGTH}"
        )
    return name


def check_status(status) -> str:
    if status not in RunStatus.values:
        raise InvalidParameterValue(f"Invalid run status {status!r}; expected one of {', '.join(RunStatus.values)}")
    return status


def check_run_id(value, what: str) -> str:
    if not isinstance(value, str) or not RUN_ID_PATTERN.fullmatch(value):
        raise InvalidParameterValue(f"{what} must be a run id, got {value!r}")
    return value


def check_experiment_tag(key, value) -> KeyValue:
    key = check_key(key, "Tag")
    value = check_text_value(value, "Tag", key)
    if key.startswith(GOAL_TAG_PREFIX) and value not in GOAL_VALUES:
        raise InvalidParameterValue(f"Experiment tag '{key}' must be 'min' or 'max', got {value!r}")
    return KeyValue(key, value)


def check_active(run: Run) -> None:
    if run.lifecycle_stage != ACTIVE:
        raise InvalidParameterValue(f"The run {run.run_id} must be in the 'active' state; it is {run.lifecycle_stage}")


def check_experiment_active(experiment: Experiment) -> None:
    if experiment.lifecycle_stage != ACTIVE:
        raise InvalidParameterValue(f"The experiment {experiment.id} must be in the 'active' state; it is deleted")


def check_client_tag(tag: KeyValue, root_run_id: str | None) -> None:
    """Refuse what a client may not write: the reserved namespace, and a root other than the
    server's (`root_run_id`, the run's actual root; only looked at for that tag)."""
    if tag.key.startswith(RESERVED_TAG_PREFIX):
        raise InvalidParameterValue(
            f"Tag '{tag.key}' is in the reserved '{RESERVED_TAG_PREFIX}' namespace, which Runtree writes itself"
        )
    if tag.key == ROOT_RUN_ID_TAG and tag.value != root_run_id:
        raise InvalidParameterValue(
            f"Tag '{ROOT_RUN_ID_TAG}' is kept by the server (it is {root_run_id!r} for this run); "
            "set 'mlflow.parentRunId' to move the run"
        )
