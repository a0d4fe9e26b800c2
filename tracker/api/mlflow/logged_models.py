"""MLflow 3's logged-model RPCs, log-inputs and runs/outputs (service.proto): what `log_model`,
autolog, `log_input` and `load_model("models:/<model_id>")` call.

Thin views as in tracker/api/mlflow/views.py: read the fields, call one service or read, answer
MLflow's JSON.
"""

from collections import defaultdict

from tracker.api.mlflow.json import (
    Fields,
    json_number,
    offset_from_page_token,
    page_token,
    parse_experiment_id,
)
from tracker.api.mlflow.views import _experiment, _run, _tags, by_method, rpc
from tracker.errors import InvalidParameterValue
from tracker.filtering.logged_models import DatasetFilter
from tracker.models import (
    LoggedModel,
    LoggedModelMetric,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
)
from tracker.selectors.logged_models import logged_models_search
from tracker.selectors.runs import find_run
from tracker.services import KeyValue, artifacts, datasets, logged_models

# MLflow's enum names for a model's status (LoggedModelStatus in service.proto).
STATUS_NAMES = {
    LoggedModelStatus.PENDING: "LOGGED_MODEL_PENDING",
    LoggedModelStatus.READY: "LOGGED_MODEL_READY",
    LoggedModelStatus.FAILED: "LOGGED_MODEL_UPLOAD_FAILED",
}
_STATUS_ENUM = {
    "LOGGED_MODEL_STATUS_UNSPECIFIED": 0,
    **{name: number for number, name in enumerate(STATUS_NAMES.values(), 1)},
}
_STATUS_BY_NAME = {name: status for status, name in STATUS_NAMES.items()}
SEARCH_MAX_RESULTS_DEFAULT = 100
# The largest page: a larger max_results gets pages of this size, each with a token for the
# next. mlflow.search_logged_models follows the tokens until it holds max_results models, so its
# answer is the same; MlflowClient's one call gets the first page and the token.
SEARCH_MAX_RESULTS = 1000


# --- JSON --------------------------------------------------------------------------------------


def logged_models_to_dicts(models: list[LoggedModel]) -> list[dict]:
    """MLflow's LoggedModel JSON for each of `models`, in order: their tags, params and metrics
    in one query each, however many models (a search page, or one model)."""
    pks = [model.pk for model in models]
    tags, params, metrics = defaultdict(list), defaultdict(list), defaultdict(list)
    for model_pk, key, value in (
        LoggedModelTag.objects.filter(model__in=pks).order_by("pk").values_list("model", "key", "value")
    ):
        tags[model_pk].append({"key": key, "value": value})
    for model_pk, key, value in (
        LoggedModelParam.objects.filter(model__in=pks).order_by("pk").values_list("model", "key", "value")
    ):
        params[model_pk].append({"key": key, "value": value})
    points = (
        LoggedModelMetric.objects.filter(model__in=pks)
        .order_by("key", "step", "timestamp", "pk")
        .values_list("model", "key", "value", "timestamp", "step", "run__run_id", "dataset_name", "dataset_digest")
    )
    model_ids = {model.pk: model.model_id for model in models}
    for model_pk, key, value, timestamp, step, run_id, dataset_name, dataset_digest in points:
        metric = {
            "key": key,
            "value": json_number(value),
            "timestamp": timestamp,
            "step": step,
            "run_id": run_id,
            "model_id": model_ids[model_pk],  # MLflow's store fills it in a model's metrics too
        }
        metric.update({k: v for k, v in (("dataset_name", dataset_name), ("dataset_digest", dataset_digest)) if v})
        metrics[model_pk].append(metric)
    return [_model_to_dict(model, tags[model.pk], params[model.pk], metrics[model.pk]) for model in models]


def _model_to_dict(model: LoggedModel, tags: list, params: list, metrics: list) -> dict:
    info = {
        "model_id": model.model_id,
        "experiment_id": str(model.experiment_id),
        "name": model.name,
        "creation_timestamp_ms": model.creation_time,
        "last_updated_timestamp_ms": model.last_updated_time,
        "artifact_uri": model.artifact_location,
        "status": STATUS_NAMES[model.status],
        "tags": tags,
    }
    # Unset fields are left out, as protobuf's JSON leaves them out.
    for name, value in (
        ("model_type", model.model_type),
        ("source_run_id", model.source_run.run_id if model.source_run_id else ""),
        ("status_message", model.status_message),
    ):
        if value:
            info[name] = value
    return {"info": info, "data": {"params": params, "metrics": metrics}}


def _one(model: LoggedModel) -> dict:
    return {"model": logged_models_to_dicts([model])[0]}


# --- views -------------------------------------------------------------------------------------


def _model(model_id: str, *, allow_deleted: bool = False) -> LoggedModel:
    return LoggedModel.objects.select_related("source_run").get_by_model_id(model_id, allow_deleted=allow_deleted)


def _params(fields: Fields) -> list[KeyValue]:
    return [KeyValue(p.string("key", required=True), p.string("value") or "") for p in fields.objects("params")]


@rpc("POST")
def create_logged_model(fields: Fields) -> dict:
    source_run_id = fields.string("source_run_id")
    model = logged_models.logged_model_create(
        experiment=_experiment(fields),
        name=fields.string("name"),
        model_type=fields.string("model_type"),
        source_run=find_run(source_run_id) if source_run_id else None,
        tags=_tags(fields),
        params=_params(fields),
    )
    return _one(model)


@rpc("GET")
def get_logged_model(fields: Fields, model_id: str) -> dict:
    allow_deleted = (fields.string("allow_deleted") or "false").lower() == "true"
    return _one(_model(model_id, allow_deleted=allow_deleted))


@rpc("PATCH")
def finalize_logged_model(fields: Fields, model_id: str) -> dict:
    status = fields.enum("status", _STATUS_ENUM)
    if status not in ("LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED", "LOGGED_MODEL_PENDING"):
        raise InvalidParameterValue(
            "Missing value for required parameter 'status': LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED."
        )
    model = logged_models.logged_model_finalize(model=_model(model_id), status=_STATUS_BY_NAME[status])
    return _one(model)


@rpc("DELETE")
def delete_logged_model(fields: Fields, model_id: str) -> dict:
    logged_models.logged_model_delete(model=_model(model_id))
    return {}


@rpc("PATCH")
def set_logged_model_tags(fields: Fields, model_id: str) -> dict:
    logged_models.logged_model_set_tags(model=_model(model_id), tags=_tags(fields))
    return {}


@rpc("DELETE")
def delete_logged_model_tag(fields: Fields, model_id: str, tag_key: str) -> dict:
    logged_models.logged_model_delete_tag(model=_model(model_id), key=tag_key)
    return {}


@rpc("POST")
def log_logged_model_params(fields: Fields, model_id: str) -> dict:
    logged_models.logged_model_log_params(model=_model(model_id), params=_params(fields))
    return {}


@rpc("POST")
def search_logged_models_view(fields: Fields) -> dict:
    experiment_ids = [
        parse_experiment_id(value, f"experiment_ids[{index}]")
        for index, value in enumerate(fields.strings("experiment_ids"))
    ]
    if not experiment_ids:
        raise InvalidParameterValue("Missing value for required parameter 'experiment_ids'.")
    dataset_filters = []
    for dataset in fields.objects("datasets"):
        dataset_filters.append(
            DatasetFilter(dataset.string("dataset_name", required=True), dataset.string("dataset_digest"))
        )
    order_by = [
        {
            "field_name": clause.string("field_name", required=True),
            "ascending": clause.boolean("ascending", default=True),
            "dataset_name": clause.string("dataset_name"),
            "dataset_digest": clause.string("dataset_digest"),
        }
        for clause in fields.objects("order_by")
    ]
    page_size = _search_page_size(fields)
    offset = offset_from_page_token(fields.string("page_token"))
    models = logged_models_search(
        experiment_ids=experiment_ids, filter_text=fields.string("filter"), datasets=dataset_filters, order_by=order_by
    )
    page = list(models[offset : offset + page_size + 1])
    payload = {"models": logged_models_to_dicts(page[:page_size])}
    if len(page) > page_size:
        payload["next_page_token"] = page_token(offset + page_size)
    return payload


def _search_page_size(fields: Fields) -> int:
    """max_results as `mlflow server` reads it (0 or none: the default; any size accepted), but
    at most SEARCH_MAX_RESULTS a page."""
    max_results = fields.integer("max_results")
    if max_results is not None and max_results < 0:
        raise InvalidParameterValue(
            f"Invalid value {max_results} for parameter 'max_results': it must not be negative."
        )
    return min(max_results or SEARCH_MAX_RESULTS_DEFAULT, SEARCH_MAX_RESULTS)


@rpc("GET")
def list_logged_model_artifacts(fields: Fields, model_id: str) -> dict:
    """A folder of the model's files, paths from the model's root (MLflow's UI lists this)."""
    model = _model(model_id)
    relative = fields.string("artifact_directory_path")
    listed = artifacts.artifact_list(path=artifacts.logged_model_artifact_path(model=model, path=relative))
    prefix = f"{relative.rstrip('/')}/" if relative else ""
    files = [
        {"path": prefix + entry.path, "is_dir": entry.is_dir} | ({} if entry.is_dir else {"file_size": entry.file_size})
        for entry in listed
    ]
    return {"root_uri": model.artifact_location, **({"files": files} if files else {})}


@rpc("POST")
def log_outputs(fields: Fields) -> dict:
    outputs = [
        logged_models.ModelOutput(model_id=m.string("model_id", required=True), step=m.integer("step") or 0)
        for m in fields.objects("models")
    ]
    logged_models.run_log_outputs(run=_run(fields), models=outputs)
    return {}


@rpc("POST")
def log_inputs(fields: Fields) -> dict:
    inputs = []
    for item in fields.objects("datasets"):
        dataset = item.object("dataset", required=True)
        inputs.append(
            datasets.DatasetInput(
                name=dataset.string("name", required=True),
                digest=dataset.string("digest", required=True),
                source_type=dataset.string("source_type", required=True),
                source=dataset.string("source") or "",
                schema=dataset.string("schema") or "",
                profile=dataset.string("profile") or "",
                tags=_tags(item),
            )
        )
    model_ids = [m.string("model_id", required=True) for m in fields.objects("models")]
    datasets.run_log_inputs(run=_run(fields), datasets=inputs, model_ids=model_ids)
    return {}


logged_model = by_method(get=get_logged_model, patch=finalize_logged_model, delete=delete_logged_model)
