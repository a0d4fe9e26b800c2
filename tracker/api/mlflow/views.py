"""The MLflow-compatible tracking API: one function per RPC of MLflow's service.proto.

Each view reads its fields, makes one call into tracker (a write service in tracker/services/
or a query), and returns the response as a dict; `rpc` does the HTTP around it. Writes are
atomic in the service, and the lookup before one is a plain read, so a request costs no
savepoint (create-run excepted: it reads its answer inside its transaction).
"""

import functools

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from tracker import services
from tracker.api.mlflow.json import (
    RUN_INFO_FIELDS,
    RUN_STATUSES,
    VIEW_TYPES,
    Fields,
    error_response,
    experiment_to_dict,
    metric_to_dict,
    new_run_to_dict,
    offset_from_page_token,
    page_token,
    parse_experiment_id,
    parse_json_body,
    run_info_to_dict,
    runs_to_dicts,
)
from tracker.errors import InvalidParameterValue, TrackingError
from tracker.filtering import experiment_filter, experiment_ordering, sorted_page
from tracker.models import ACTIVE, DELETED, Experiment, Metric, Run
from tracker.selectors.runs import find_experiment, find_run, runs_matching
from tracker.services import KeyValue, MetricInput
from tracker.web.json_errors import error_body, json_response

# MLflow's limits (mlflow/utils/validation.py, mlflow/store/tracking/__init__.py). Not its
# documented 1 MB for a log-batch request: `mlflow server` measures the parsed body's key count
# against it, so it takes any size. The mlflow client's JSON escapes every non-ASCII character
# (6 bytes, 12 for an emoji), so a legal batch (100 params of 6,000 characters, 100 tags of
# 8,000, 800 metrics, keys of 250) is 1.7 MB in ASCII and up to 18.4 MB in emoji values and CJK
# keys: log-batch alone takes up to LOG_BATCH_MAX_BYTES, every other call the server's body limit
# (RUNTREE_MAX_REQUEST_BYTES, 2 MiB). A body over 2 MiB streams in from the client on one of
# the web threads kept for uploads (config/wsgi_pool.py), never more of them at once.
LOG_BATCH_MAX_BYTES = 20 * 1024 * 1024
SEARCH_MAX_RESULTS_DEFAULT = 1000
SEARCH_MAX_RESULTS = 50_000
# The page the mlflow client asks get-history for; a larger ask gets pages of this size (with a
# token for the next), so max_results=2^63-1 cannot overflow the query's LIMIT.
GET_METRIC_HISTORY_MAX_RESULTS = 25_000

_LIFECYCLE_FOR_VIEW = {"ACTIVE_ONLY": [ACTIVE], "DELETED_ONLY": [DELETED], "ALL": [ACTIVE, DELETED]}


def rpc(*methods: str, max_body_bytes: int | None = None):
    """Make `view(fields) -> dict` an MLflow endpoint: other HTTP methods get 405, the fields
    come from the query string (GET) or the JSON body (at most `max_body_bytes`, by default the
    server's limit for every request), and the dict, or a TrackingError, is rendered as MLflow's
    JSON."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def endpoint(request, **url_kwargs):
            if request.method not in methods:
                return _method_not_allowed(request, methods)
            try:
                # Path parameters (`logged-models/<model_id>`) come as keyword arguments.
                limit = max(max_body_bytes or 0, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
                return json_response(view(_request_fields(request, limit), **url_kwargs))
            except TrackingError as error:
                return error_response(error)

        endpoint.http_methods = methods
        return endpoint

    return decorate


def _method_not_allowed(request, methods) -> HttpResponse:
    """MLflow's JSON 405, naming the methods the URL takes (and in the Allow header)."""
    allowed = ", ".join(methods)
    response = error_body("ENDPOINT_NOT_FOUND", f"{request.path} accepts {allowed}, not {request.method}.", status=405)
    response["Allow"] = allowed
    return response


def by_method(**views):
    """One URL, one view per HTTP method (`logged-models/{id}`: GET, PATCH, DELETE); any other
    method gets MLflow's JSON 405."""
    methods = tuple(name.upper() for name in views)

    @csrf_exempt
    def endpoint(request, **url_kwargs):
        view = views.get(request.method.lower())
        if view is None:
            return _method_not_allowed(request, methods)
        return view(request, **url_kwargs)

    endpoint.http_methods = methods
    return endpoint


def _request_fields(request, max_bytes: int) -> Fields:
    if request.method == "GET" and request.GET:
        return Fields.from_query(request.GET)
    # Refuse an oversized body from its declared length, before reading it.
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise InvalidParameterValue("The Content-Length header is not a number.") from None
    if declared > max_bytes:
        raise _too_big(request, declared, max_bytes)
    # read(), not .body: .body applies DATA_UPLOAD_MAX_MEMORY_SIZE, which log-batch may pass. It
    # reads no further than the declared length (config/wsgi_pool.py declares a chunked body's).
    body = request.read()
    # A body not declared as JSON is refused, as `mlflow server` does: another site's page can
    # post a text/plain form whose body parses as JSON, never an application/json one
    # (tracker/web/cross_site.py).
    if body.strip() and request.content_type != "application/json":
        raise InvalidParameterValue(
            f"The request body must be sent with Content-Type: application/json, not {request.content_type or 'none'}."
        )
    return Fields(parse_json_body(body))


def _too_big(request, size: int, limit: int) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Requests to {request.path} must be at most {limit} bytes, got a request of size {size}."
    )


# Exempt from CSRF: an unknown POST (a newer client's RPC) must get this JSON, not Django's
# HTML "CSRF verification failed" page, which the client would paste into its exception.
@csrf_exempt
def endpoint_not_found(request, *args, **kwargs):
    return error_body("ENDPOINT_NOT_FOUND", f"No API endpoint at {request.method} {request.path}.", status=404)


def _max_results(fields: Fields, *, default: int, limit: int) -> int:
    max_results = fields.integer("max_results")
    if max_results is None:
        return default
    if not 1 <= max_results <= limit:
        raise InvalidParameterValue(
            f"Invalid value {max_results} for parameter 'max_results': it must be between 1 and {limit}."
        )
    return max_results


def _paged(queryset, *, offset: int, max_results: int) -> tuple[list, str | None]:
    """One page, and the token for the next one if there is more (one row fetched beyond the page)."""
    rows = list(queryset[offset : offset + max_results + 1])
    if len(rows) > max_results:
        return rows[:max_results], page_token(offset + max_results)
    return rows, None


def _with_token(payload: dict, token: str | None) -> dict:
    if token:
        payload["next_page_token"] = token
    return payload


def _tags(fields: Fields) -> list[KeyValue]:
    return [KeyValue(tag.string("key", required=True), tag.string("value") or "") for tag in fields.objects("tags")]


def _experiment(fields: Fields) -> Experiment:
    return find_experiment(fields.experiment_id())


def _run(fields: Fields) -> Run:
    return find_run(fields.run_id())


# --- experiments -------------------------------------------------------------------------------


@rpc("POST")
def create_experiment(fields: Fields) -> dict:
    experiment = services.experiment_create(
        name=fields.string("name", required=True),
        artifact_location=fields.string("artifact_location") or "",
        tags=_tags(fields),
    )
    return {"experiment_id": str(experiment.pk)}


@rpc("GET")
def get_experiment(fields: Fields) -> dict:
    experiment = find_experiment(fields.experiment_id())
    return {"experiment": experiment_to_dict(experiment)}


@rpc("GET")
def get_experiment_by_name(fields: Fields) -> dict:
    experiment = Experiment.objects.prefetch_related("tags").get_by_name(
        fields.string("experiment_name", required=True)
    )
    return {"experiment": experiment_to_dict(experiment)}


@rpc("GET", "POST")
def search_experiments(fields: Fields) -> dict:
    view_type = fields.enum("view_type", VIEW_TYPES, default="ACTIVE_ONLY")
    max_results = _max_results(fields, default=SEARCH_MAX_RESULTS_DEFAULT, limit=SEARCH_MAX_RESULTS)
    offset = offset_from_page_token(fields.string("page_token"))
    experiments = (
        Experiment.objects.filter(lifecycle_stage__in=_LIFECYCLE_FOR_VIEW[view_type])
        .filter(experiment_filter(fields.string("filter")))
        .order_by(*experiment_ordering(fields.strings("order_by")))
        .prefetch_related("tags")
    )
    page, token = _paged(experiments, offset=offset, max_results=max_results)
    return _with_token({"experiments": [experiment_to_dict(e) for e in page]}, token)


@rpc("POST")
def update_experiment(fields: Fields) -> dict:
    services.experiment_rename(experiment=_experiment(fields), new_name=fields.string("new_name", required=True))
    return {}


@rpc("POST")
def delete_experiment(fields: Fields) -> dict:
    services.experiment_set_lifecycle(experiment=_experiment(fields), stage=DELETED)
    return {}


@rpc("POST")
def restore_experiment(fields: Fields) -> dict:
    services.experiment_set_lifecycle(experiment=_experiment(fields), stage=ACTIVE)
    return {}


@rpc("POST")
def set_experiment_tag(fields: Fields) -> dict:
    services.experiment_set_tag(
        experiment=_experiment(fields),
        key=fields.string("key", required=True),
        value=fields.string("value") or "",
    )
    return {}


@rpc("POST")
def delete_experiment_tag(fields: Fields) -> dict:
    services.experiment_delete_tag(experiment=_experiment(fields), key=fields.string("key", required=True))
    return {}


# --- MLflow 3's server-info --------------------------------------------------------------------


@rpc("GET")
def server_info(fields: Fields) -> dict:
    """How the server is set up (mlflow/server/handlers.py build_server_info_payload). The client
    asks before artifact calls and caches a 200 for 60 s, but a 404 not at all. Public even
    with RUNTREE_AUTH=required (tracker/web/auth.py), so it holds nothing about what is stored."""
    return {
        "store_type": None,  # neither of MLflow's stores (FileStore, SqlStore)
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        # The mpu endpoints refuse (tracker/api/mlflow/artifacts.py): one PUT or GET per file.
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {"gateway": False},
    }


# --- runs --------------------------------------------------------------------------------------


@rpc("POST")
@transaction.atomic  # the answer is read before the commit: a run committed without it would be made twice on retry
def create_run(fields: Fields) -> dict:
    run = services.run_create(
        experiment=_experiment(fields),
        name=fields.string("run_name") or "",
        user_id=fields.string("user_id") or "",
        start_time=fields.integer("start_time"),
        tags=_tags(fields),
    )
    return {"run": new_run_to_dict(run)}


@rpc("GET")
def get_run(fields: Fields) -> dict:
    return {"run": runs_to_dicts([_run(fields)])[0]}


@rpc("POST")
def update_run(fields: Fields) -> dict:
    run = services.run_update(
        run=_run(fields),
        status=fields.enum("status", RUN_STATUSES),
        end_time=fields.integer("end_time"),
        name=fields.string("run_name"),
    )
    return {"run_info": run_info_to_dict(run)}


@rpc("POST")
def delete_run(fields: Fields) -> dict:
    services.run_set_lifecycle(run=_run(fields), stage=DELETED)
    return {}


@rpc("POST")
def restore_run(fields: Fields) -> dict:
    services.run_set_lifecycle(run=_run(fields), stage=ACTIVE)
    return {}


@rpc("POST")
def log_metric(fields: Fields) -> dict:
    services.run_log_metric(run=_run(fields), metric=_metric(fields))
    return {}


def _metric(fields: Fields) -> MetricInput:
    return MetricInput(
        key=fields.string("key", required=True),
        value=fields.number("value", required=True),
        timestamp=fields.integer("timestamp", required=True),
        step=fields.integer("step") or 0,
        model_id=fields.string("model_id"),
        dataset_name=fields.string("dataset_name"),
        dataset_digest=fields.string("dataset_digest"),
    )


@rpc("POST")
def log_param(fields: Fields) -> dict:
    services.run_log_param(
        run=_run(fields), key=fields.string("key", required=True), value=fields.string("value") or ""
    )
    return {}


@rpc("POST")
def set_tag(fields: Fields) -> dict:
    services.run_set_tag(run=_run(fields), key=fields.string("key", required=True), value=fields.string("value") or "")
    return {}


@rpc("POST")
def delete_tag(fields: Fields) -> dict:
    services.run_delete_tag(run=_run(fields), key=fields.string("key", required=True))
    return {}


@rpc("POST", max_body_bytes=LOG_BATCH_MAX_BYTES)
def log_batch(fields: Fields) -> dict:
    services.run_log_batch(
        run=_run(fields),
        metrics=[_metric(metric) for metric in fields.objects("metrics")],
        params=[
            KeyValue(param.string("key", required=True), param.string("value") or "")
            for param in fields.objects("params")
        ],
        tags=_tags(fields),
    )
    return {}


@rpc("POST")
def search_runs(fields: Fields) -> dict:
    experiment_ids = [
        parse_experiment_id(value, f"experiment_ids[{index}]")
        for index, value in enumerate(fields.strings("experiment_ids"))
    ]
    view_type = fields.enum("run_view_type", VIEW_TYPES, default="ACTIVE_ONLY")
    max_results = _max_results(fields, default=SEARCH_MAX_RESULTS_DEFAULT, limit=SEARCH_MAX_RESULTS)
    runs = runs_matching(
        Run.objects.filter(experiment__in=experiment_ids, lifecycle_stage__in=_LIFECYCLE_FOR_VIEW[view_type]),
        fields.string("filter") or "",
    )
    # Rows, not model instances: building 1,000 Run objects was a third of a full page's time.
    # Keyset pages: page N costs what page 1 costs (tracker/filtering/paging.py).
    page, token = sorted_page(
        runs, fields.strings("order_by"), token=fields.string("page_token"), size=max_results, fields=RUN_INFO_FIELDS
    )
    return _with_token({"runs": runs_to_dicts(page)}, token)


@rpc("GET")
def get_metric_history(fields: Fields) -> dict:
    run = _run(fields)
    key = fields.string("metric_key", required=True)
    max_results = fields.integer("max_results")
    if max_results is not None and max_results < 1:
        raise InvalidParameterValue(
            f"Invalid value {max_results} for parameter 'max_results': it must be a positive integer."
        )
    # Step order, as the history charts read it (the index's order); pk keeps paging stable.
    history = (
        Metric.objects.filter(run=run, key=key)
        .order_by("step", "timestamp", "pk")
        .values_list("key", "value", "timestamp", "step", "model_id", "dataset_name", "dataset_digest")
    )
    if max_results is None:
        # Without max_results, MLflow returns the whole history in one response.
        return {"metrics": [metric_to_dict(*row) for row in history]}
    max_results = min(max_results, GET_METRIC_HISTORY_MAX_RESULTS)
    page, token = _paged(history, offset=offset_from_page_token(fields.string("page_token")), max_results=max_results)
    return _with_token({"metrics": [metric_to_dict(*row) for row in page]}, token)
