"""MLflow's REST dialect, in one module: reading request fields with MLflow's types, the JSON
shapes of experiments, runs and metrics, page tokens, and the error body.

The wire format is protobuf's JSON mapping, as the mlflow client writes and parses it:
field names in snake_case, int64 as numbers (a decimal string is accepted too, as protobuf
allows), experiment ids as strings, enums by name, and doubles that are not finite as the
quoted strings "NaN", "Infinity" and "-Infinity" — the client's parser refuses a bare NaN.
"""

import base64
import binascii
import json
import math
import re

from django.http import HttpResponse, QueryDict

from tracker import hot_sql
from tracker.errors import InvalidParameterValue, TrackingError
from tracker.models import Experiment, Run
from tracker.ranges import INT64_MAX, INT64_MIN, OutOfRange, int_from_text
from tracker.summaries import reads as summary_reads
from tracker.web.json_errors import error_body

# What protobuf's JSON parser accepts as a number written as a string.
_DECIMAL_INTEGER = re.compile(r"-?\d+", re.ASCII)
_DECIMAL_NUMBER = re.compile(r"-?\d+(\.\d*)?([eE][+-]?\d+)?|-?\.\d+([eE][+-]?\d+)?", re.ASCII)
_NON_FINITE_BY_NAME = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Enums may come by number, as protobuf's JSON mapping allows.
VIEW_TYPES = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}
RUN_STATUSES = {"RUNNING": 1, "SCHEDULED": 2, "FINISHED": 3, "FAILED": 4, "KILLED": 5}


# --- requests --------------------------------------------------------------------------------


def parse_json_body(body: bytes) -> dict:
    """The request's JSON object; an empty body is an empty request, as in MLflow."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
        # Older clients post their JSON double-encoded as a string (MLflow decodes it twice too).
        if isinstance(data, str):
            data = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # RecursionError: nested too deep
        raise InvalidParameterValue(f"The request body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidParameterValue(f"The request body must be a JSON object, got {_json_type(data)}")
    return data


class Fields:
    """A request's fields with MLflow's types. A missing or mistyped field raises
    InvalidParameterValue naming it (with its path inside the body, e.g. `metrics[2].value`);
    fields nobody asks for are ignored, as MLflow ignores unknown fields."""

    def __init__(self, data: dict, *, path: str = "", from_query: bool = False):
        self._data = data
        self._path = path
        # Query-string values are all strings, and a list may come as a single value.
        self._from_query = from_query

    @classmethod
    def from_query(cls, query: QueryDict) -> "Fields":
        # A repeated key (experiment_ids=1&experiment_ids=2) is a list; any other is its value.
        data = {key: values if len(values) > 1 else values[-1] for key, values in query.lists()}
        return cls(data, from_query=True)

    def _name(self, name: str) -> str:
        return f"{self._path}{name}"

    def _raw(self, name: str):
        # JSON null means "not set", as in protobuf.
        return self._data.get(name)

    def _missing(self, name: str) -> InvalidParameterValue:
        return InvalidParameterValue(f"Missing value for required parameter '{self._name(name)}'.")

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self._raw(name)
        if value is None or (required and value == ""):
            if required:
                raise self._missing(name)
            return None
        if not isinstance(value, str):
            raise _wrong(self._name(name), value, "a string")
        return _storable(value, self._name(name))

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self._raw(name)
        if value is None:
            if required:
                raise self._missing(name)
            return None
        return _int64(value, self._name(name))

    def number(self, name: str, *, required: bool = False) -> float | None:
        value = self._raw(name)
        if value is None:
            if required:
                raise self._missing(name)
            return None
        if isinstance(value, float):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise InvalidParameterValue(
                    f"Invalid value for parameter '{self._name(name)}': {len(str(value))} digits is out of range."
                ) from None
        if isinstance(value, str):
            if value in _NON_FINITE_BY_NAME:
                return _NON_FINITE_BY_NAME[value]
            if _DECIMAL_NUMBER.fullmatch(value):
                return float(value)
        raise _wrong(self._name(name), value, 'a number (or "NaN", "Infinity", "-Infinity")')

    def enum(self, name: str, members: dict[str, int], *, default: str | None = None) -> str | None:
        value = self._raw(name)
        if value is None:
            return default
        if isinstance(value, str) and value in members:
            return value
        by_number = {number: member for member, number in members.items()}
        if isinstance(value, str) and _DECIMAL_INTEGER.fullmatch(value):
            try:
                value = int_from_text(value)
            except OutOfRange:
                pass  # no member has that number: refused below
        if isinstance(value, int) and not isinstance(value, bool) and value in by_number:
            return by_number[value]
        raise _wrong(self._name(name), value, f"one of {', '.join(members)}")

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if self._from_query and value in ("true", "false"):
            return value == "true"
        if not isinstance(value, bool):
            raise _wrong(self._name(name), value, "a boolean")
        return value

    def object(self, name: str, *, required: bool = False) -> "Fields":
        value = self._raw(name)
        if value is None:
            if required:
                raise self._missing(name)
            value = {}
        if not isinstance(value, dict):
            raise _wrong(self._name(name), value, "an object")
        return Fields(value, path=f"{self._name(name)}.")

    def strings(self, name: str) -> list[str]:
        value = self._raw(name)
        if value is None:
            return []
        if self._from_query and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise _wrong(self._name(name), value, "a list of strings")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise _wrong(self._name(f"{name}[{index}]"), item, "a string")
            _storable(item, self._name(f"{name}[{index}]"))
        return value

    def objects(self, name: str) -> list["Fields"]:
        value = self._raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _wrong(self._name(name), value, "a list of objects")
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise _wrong(self._name(f"{name}[{index}]"), item, "an object")
            items.append(Fields(item, path=f"{self._name(name)}[{index}]."))
        return items

    def run_id(self) -> str:
        """The run's id: `run_id`, or `run_uuid` as older clients send it."""
        run_id = self.string("run_id")
        if run_id:
            return run_id
        run_uuid = self.string("run_uuid")
        if run_uuid:
            return run_uuid
        raise self._missing("run_id")

    def experiment_id(self, name: str = "experiment_id") -> int:
        return parse_experiment_id(self.string(name, required=True), self._name(name))


def parse_experiment_id(value: str, field: str) -> int:
    """Experiment ids are strings on the wire and integers here; anything else is refused
    before it reaches the database (an id beyond 64 bits would overflow there)."""
    try:
        return int_from_text(value)
    except ValueError:  # OutOfRange too
        shown = value if len(value) <= 100 else value[:100] + "..."
        raise InvalidParameterValue(
            f"Invalid value {shown!r} for parameter '{field}': an experiment id is a 64-bit integer."
        ) from None


def _int64(value, field: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and _DECIMAL_INTEGER.fullmatch(value):
        try:
            value = int_from_text(value)
        except OutOfRange:
            raise InvalidParameterValue(
                f"Invalid value for parameter '{field}': a {len(value)}-character number is out of the 64-bit range."
            ) from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong(field, value, "an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidParameterValue(f"Invalid value {value} for parameter '{field}': it is out of the 64-bit range.")
    return value


def _wrong(field: str, value, expected: str) -> InvalidParameterValue:
    shown = repr(value) if len(repr(value)) <= 100 else repr(value)[:100] + "..."
    return InvalidParameterValue(
        f"Invalid value {shown} for parameter '{field}': expected {expected}, got {_json_type(value)}."
    )


def _storable(value: str, field: str) -> str:
    """Refuse what no database column can hold: NUL characters (PostgreSQL rejects them) and
    lone surrogates (not encodable as UTF-8)."""
    if "\x00" in value:
        raise InvalidParameterValue(f"Invalid value for parameter '{field}': it contains a NUL character.")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidParameterValue(
                f"Invalid value for parameter '{field}': it is not valid Unicode (a lone surrogate)."
            ) from None
    return value


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


# --- page tokens -------------------------------------------------------------------------------


def page_token(offset: int) -> str:
    # MLflow's own format (base64 of {"offset": n}), so tokens look familiar; clients treat them as opaque.
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def offset_from_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.b64decode(token, validate=True))["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
        raise InvalidParameterValue(f"Invalid page token {token[:100]!r}: it was not issued by this server.") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= INT64_MAX:
        raise InvalidParameterValue(f"Invalid page token {token[:100]!r}: it was not issued by this server.")
    return offset


# --- responses ---------------------------------------------------------------------------------


def error_response(error: TrackingError) -> HttpResponse:
    return error_body(error.error_code, error.message, status=error.http_status)


def json_number(value: float | None) -> float | str:
    """A metric value as MLflow writes it. NULL is a stored NaN (see models.MetricValueMixin)."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def experiment_to_dict(experiment: Experiment) -> dict:
    """Needs the experiment's tags (prefetch them when rendering many)."""
    return {
        "experiment_id": str(experiment.pk),
        "name": experiment.name,
        "artifact_location": experiment.artifact_location,
        "lifecycle_stage": experiment.lifecycle_stage,
        "last_update_time": experiment.last_update_time,
        "creation_time": experiment.creation_time,
        "tags": [{"key": tag.key, "value": tag.value} for tag in experiment.tags.all()],
    }


# The columns run_info_to_dict and runs_to_dicts read: a page of runs fetches only these.
RUN_INFO_FIELDS = (
    "id",
    "run_id",
    "experiment_id",
    "name",
    "user_id",
    "status",
    "start_time",
    "end_time",
    "artifact_uri",
    "lifecycle_stage",
)


def run_info_to_dict(run: Run | tuple) -> dict:
    """`run`: a Run, or a row with RUN_INFO_FIELDS as attributes."""
    info = {
        "run_id": run.run_id,
        "run_uuid": run.run_id,
        "experiment_id": str(run.experiment_id),
        "run_name": run.name,
        "user_id": run.user_id,
        "status": run.status,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "artifact_uri": run.artifact_uri,
        "lifecycle_stage": run.lifecycle_stage,
    }
    # MLflow leaves unset times out rather than sending null.
    if run.start_time is None:
        del info["start_time"]
    if run.end_time is None:
        del info["end_time"]
    return info


def runs_to_dicts(runs: list[Run] | list[tuple]) -> list[dict]:
    """MLflow's Run JSON for each of `runs` (in order): their params, tags, latest metrics and
    best-child summaries are read in one query each per 30,000 runs (a page holds at most
    50,000). A parent's summaries arrive as read-only `runtree.best.*` tags (the seed notebook's
    "challenge", done by the server). `runs`: Runs, or rows with RUN_INFO_FIELDS as attributes."""
    data = {run.id: {"metrics": [], "params": [], "tags": []} for run in runs}
    pks = list(data)
    for run_pk, key, value in hot_sql.params_of(pks):
        data[run_pk]["params"].append({"key": key, "value": value})
    for run_pk, key, value in hot_sql.tags_of(pks):
        data[run_pk]["tags"].append({"key": key, "value": value})
    for run_pk, key, value, timestamp, step in hot_sql.latest_metrics_of(pks):
        data[run_pk]["metrics"].append(metric_to_dict(key, value, timestamp, step))
    for run_pk, summary_tags in summary_reads.reserved_tags_for(pks).items():
        data[run_pk]["tags"].extend({"key": key, "value": value} for key, value in summary_tags)
    inputs, outputs = _inputs_and_outputs(pks)
    return [
        {"info": run_info_to_dict(run), "data": data[run.id], "inputs": inputs[run.id], "outputs": outputs[run.id]}
        for run in runs
    ]


def _inputs_and_outputs(run_pks: list[int]) -> tuple[dict[int, dict], dict[int, dict]]:
    """MLflow's RunInputs and RunOutputs of each run, read in one query: datasets with their
    input tags, the logged models a run used, and those it produced with their step. Empty
    lists are left out, as protobuf's JSON leaves them out."""
    inputs: dict[int, dict] = {pk: {} for pk in run_pks}
    outputs: dict[int, dict] = {pk: {} for pk in run_pks}
    for run_pk, kind, model_id, step, *dataset, tags in hot_sql.inputs_and_outputs_of(run_pks):
        if kind == "dataset":
            name, digest, source_type, source, schema, profile = dataset
            described = {"name": name, "digest": digest, "source_type": source_type, "source": source}
            described.update({k: v for k, v in (("schema", schema), ("profile", profile)) if v})
            inputs[run_pk].setdefault("dataset_inputs", []).append({"tags": tags, "dataset": described})
        elif kind == "model_input":
            inputs[run_pk].setdefault("model_inputs", []).append({"model_id": model_id})
        else:
            outputs[run_pk].setdefault("model_outputs", []).append({"model_id": model_id, "step": step})
    return inputs, outputs


def new_run_to_dict(run: Run) -> dict:
    """MLflow's Run JSON for a run created in this transaction: it has tags only (params,
    metrics, inputs and outputs come in later requests, summaries from a refresh after commit),
    so one query."""
    tags = [{"key": key, "value": value} for _, key, value in hot_sql.tags_of([run.pk])]
    data = {"metrics": [], "params": [], "tags": tags}
    return {"info": run_info_to_dict(run), "data": data, "inputs": {}, "outputs": {}}


def metric_to_dict(
    key: str,
    value: float | None,
    timestamp: int,
    step: int,
    model_id: str | None = None,
    dataset_name: str | None = None,
    dataset_digest: str | None = None,
) -> dict:
    metric = {"key": key, "value": json_number(value), "timestamp": timestamp, "step": step}
    # MLflow 3's fields, left out when unset, as protobuf's JSON leaves them out. Latest values
    # (every search page's metrics) never carry them: the test first skips the loop for them.
    if model_id is None and dataset_name is None and dataset_digest is None:
        return metric
    for name, given in (("model_id", model_id), ("dataset_name", dataset_name), ("dataset_digest", dataset_digest)):
        if given is not None:
            metric[name] = given
    return metric
