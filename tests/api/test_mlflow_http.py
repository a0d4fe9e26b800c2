"""The MLflow API over plain HTTP: its JSON shapes, and bad input on every endpoint.

Every refusal carries MLflow's error code and a message saying what was wrong, and leaves
what was stored before exactly as it was.
"""

import base64
import json

import pytest
from django.test import Client

from tests.factories import build_chain
from tracker import services
from tracker.models import Experiment, LatestMetric, Metric, Param, Run, RunTag
from tracker.services import KeyValue, MetricInput

pytestmark = pytest.mark.django_db

API = "/api/2.0/mlflow/"
UNKNOWN_RUN = "f" * 32
# A page token that decodes to JSON nested deeper than Python's recursion limit.
DEEP_TOKEN = base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode()


def call(client, rpc: str, body=None, *, method: str = "POST"):
    """POST a JSON body (a dict, or raw text to send as is), or GET with query parameters."""
    if method == "GET":
        return client.get(API + rpc, body or {})
    data = body if isinstance(body, str | bytes) else json.dumps(body or {})
    return client.generic(method, API + rpc, data, content_type="application/json")


def assert_refused(response, status: int, error_code: str, *says: str):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error_code"] == error_code
    for fragment in says:
        assert fragment in body["message"], body["message"]


def assert_invalid(response, *says: str):
    assert_refused(response, 400, "INVALID_PARAMETER_VALUE", *says)


@pytest.fixture
def run(experiment):
    run = services.run_create(experiment=experiment, name="trial", tags=[KeyValue("team", "vision")])
    services.run_log_batch(
        run=run,
        metrics=[MetricInput("loss", 0.5, 1000, 0), MetricInput("loss", 0.25, 2000, 1)],
        params=[KeyValue("lr", "0.1")],
    )
    return run


def stored(run: Run) -> dict:
    """Everything a refused request must leave as it was."""
    return {
        "run": Run.objects.filter(pk=run.pk).values().get(),
        "params": set(Param.objects.filter(run=run).values_list("key", "value")),
        "tags": set(RunTag.objects.filter(run=run).values_list("key", "value")),
        "metrics": set(Metric.objects.filter(run=run).values_list("key", "value", "timestamp", "step")),
        "latest": set(LatestMetric.objects.filter(run=run).values_list("key", "value", "timestamp", "step")),
    }


# --- shapes ------------------------------------------------------------------------------------


def test_a_run_is_served_in_mlflows_json_with_latest_metrics_and_string_experiment_id(client, run):
    services.run_log_metric(run=run, metric=MetricInput("score", float("nan"), 3000, 2))
    response = call(client, "runs/get", {"run_id": run.run_id}, method="GET")
    assert response.status_code == 200
    body = response.json()["run"]
    assert body["info"] == {
        "run_id": run.run_id,
        "run_uuid": run.run_id,
        "experiment_id": str(run.experiment_id),
        "run_name": "trial",
        "user_id": "",
        "status": "RUNNING",
        "start_time": run.start_time,
        "artifact_uri": f"{run.experiment.artifact_location}/{run.run_id}/artifacts",
        "lifecycle_stage": "active",
    }  # no end_time while it is unset, as MLflow
    assert sorted(body["data"]["metrics"], key=lambda m: m["key"]) == [
        {"key": "loss", "value": 0.25, "timestamp": 2000, "step": 1},
        {"key": "score", "value": "NaN", "timestamp": 3000, "step": 2},
    ]
    assert body["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    assert {"key": "team", "value": "vision"} in body["data"]["tags"]
    assert body["inputs"] == {}
    # Non-finite numbers travel as quoted strings: the client's parser refuses a bare NaN.
    assert b"NaN," not in response.content and b'"NaN"' in response.content


def test_an_experiment_is_served_with_its_tags_and_a_string_id(client, experiment):
    services.experiment_set_tag(experiment=experiment, key="team", value="vision")
    experiment.refresh_from_db()
    body = call(client, "experiments/get", {"experiment_id": str(experiment.pk)}, method="GET").json()
    assert body["experiment"] == {
        "experiment_id": str(experiment.pk),
        "name": experiment.name,
        "artifact_location": experiment.artifact_location,
        "lifecycle_stage": "active",
        "last_update_time": experiment.last_update_time,
        "creation_time": experiment.creation_time,
        "tags": [{"key": "team", "value": "vision"}],
    }


def test_the_ajax_prefix_serves_the_same_api(client, run):
    response = client.get("/ajax-api/2.0/mlflow/runs/get", {"run_id": run.run_id})
    assert response.json()["run"]["info"]["run_id"] == run.run_id


def test_run_uuid_is_accepted_where_older_clients_send_it(client, run):
    response = call(client, "runs/log-metric", {"run_uuid": run.run_id, "key": "acc", "value": 1, "timestamp": 5})
    assert response.status_code == 200
    response = call(client, "runs/get", {"run_uuid": run.run_id}, method="GET")
    assert response.json()["run"]["info"]["run_id"] == run.run_id
    assert LatestMetric.objects.get(run=run, key="acc").value == 1


def test_unknown_fields_are_ignored(client, run):
    response = call(client, "runs/set-tag", {"run_id": run.run_id, "key": "k", "value": "v", "colour": [1, 2]})
    assert response.status_code == 200 and response.json() == {}
    assert RunTag.objects.get(run=run, key="k").value == "v"


def test_nan_and_infinities_are_accepted_as_strings_and_as_bare_json_tokens(client, run):
    for step, value in enumerate(['"NaN"', '"Infinity"', '"-Infinity"', "NaN", "-Infinity"]):
        body = f'{{"run_id": "{run.run_id}", "key": "odd", "value": {value}, "timestamp": 1, "step": {step}}}'
        assert call(client, "runs/log-metric", body).status_code == 200
    history = call(client, "metrics/get-history", {"run_id": run.run_id, "metric_key": "odd"}, method="GET")
    assert [m["value"] for m in history.json()["metrics"]] == ["NaN", "Infinity", "-Infinity", "NaN", "-Infinity"]


def test_a_large_batch_keeps_every_value_and_odd_key_exactly(client, run):
    # Large batches take another way into the database on PostgreSQL (COPY, in tracker/hot_sql.py).
    values = [0.1, -0.0, 1e308, -1e-308, 3, "NaN", "Infinity", "-Infinity"] * 10
    keys = ["odd: key/with spaces-and.dots", "ünïcödé", "loss"]
    metrics = [
        {"key": keys[i % 3], "value": value, "timestamp": 10_000 + i, "step": i} for i, value in enumerate(values)
    ]
    assert call(client, "runs/log-batch", {"run_id": run.run_id, "metrics": metrics}).status_code == 200
    for key in keys:
        history = call(client, "metrics/get-history", {"run_id": run.run_id, "metric_key": key}, method="GET")
        logged = [(m["value"], m["timestamp"], m["step"]) for m in metrics if m["key"] == key]
        expected = [(float(v) if isinstance(v, int) else v, t, s) for v, t, s in logged]
        if key == "loss":  # the fixture's two values come first
            expected = [(0.5, 1000, 0), (0.25, 2000, 1), *expected]
        got = [(m["value"], m["timestamp"], m["step"]) for m in history.json()["metrics"]]
        assert sorted(got, key=lambda m: (m[2], m[1])) == sorted(expected, key=lambda m: (m[2], m[1]))
    latest = {
        m["key"]: m["value"]
        for m in call(client, "runs/get", {"run_id": run.run_id}, method="GET").json()["run"]["data"]["metrics"]
    }
    assert latest == {keys[(len(values) - 1 - j) % 3]: values[len(values) - 1 - j] for j in (2, 1, 0)}


def test_metric_history_pages_with_max_results_and_a_page_token(client, run):
    services.run_log_batch(run=run, metrics=[MetricInput("curve", step / 10, 1000 + step, step) for step in range(5)])
    steps, token = [], None
    while True:
        query = {"run_id": run.run_id, "metric_key": "curve", "max_results": 2, "page_token": token or ""}
        page = call(client, "metrics/get-history", query, method="GET").json()
        steps.append([m["step"] for m in page["metrics"]])
        token = page.get("next_page_token")
        if not token:
            break
    assert steps == [[0, 1], [2, 3], [4]]


def test_a_child_created_with_the_parent_tag_gets_the_parent_and_root(client, run):
    body = {"experiment_id": str(run.experiment_id), "tags": [{"key": "mlflow.parentRunId", "value": run.run_id}]}
    child = call(client, "runs/create", body).json()["run"]
    tags = {tag["key"]: tag["value"] for tag in child["data"]["tags"]}
    assert tags["mlflow.parentRunId"] == tags["mlflow.rootRunId"] == run.run_id
    assert Run.objects.get(run_id=child["info"]["run_id"]).parent == run


# --- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [API + "runs/nope", API + "runs/get/x", API, "/ajax-api/2.0/mlflow/artifacts/nope"])
def test_a_path_that_is_no_endpoint_gets_endpoint_not_found(client, path):
    assert_refused(client.get(path), 404, "ENDPOINT_NOT_FOUND", "No API endpoint at GET")


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "path",
    [
        API + "scorers/register",
        "/ajax-api/2.0/mlflow/webhooks/create",  # MLflow's webhooks: not served
        "/api/2.0/mlflow-artifacts/nope",
        "/ajax-api/2.0/mlflow-artifacts/mpu/x",
        "/api/3.0/mlflow/traces/search",  # MLflow 3's traces: not served (server-info is)
        "/api/3.0/mlflow/server-info/x",
    ],
)
def test_an_unknown_endpoint_answers_json_404_for_every_method_even_with_csrf_checks(method, path):
    # A newer client's RPC (a POST without a CSRF token) must read as "no such endpoint",
    # not as Django's HTML "CSRF verification failed" page.
    browser_like = Client(enforce_csrf_checks=True)
    response = browser_like.generic(method, path, "{}", content_type="application/json")
    assert_refused(response, 404, "ENDPOINT_NOT_FOUND", f"No API endpoint at {method} {path}")


@pytest.mark.parametrize(
    ("method", "rpc", "allowed"),
    [("GET", "runs/create", "POST"), ("POST", "runs/get", "GET"), ("DELETE", "experiments/search", "GET, POST")],
)
def test_a_wrong_http_method_gets_405_naming_the_right_one(client, method, rpc, allowed):
    response = client.generic(method, API + rpc)
    assert_refused(response, 405, "ENDPOINT_NOT_FOUND", f"not {method}")
    assert response["Allow"] == allowed


SERVER_INFO_PATHS = ["/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info"]


@pytest.mark.parametrize("path", SERVER_INFO_PATHS)
def test_server_info_says_how_runtree_is_set_up_in_mlflows_shape(client, path):
    response = client.get(path)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == {
        "store_type": None,
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {"gateway": False},
    }


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_server_info_answers_only_get(method):
    response = Client(enforce_csrf_checks=True).generic(method, SERVER_INFO_PATHS[0], "{}")
    assert_refused(response, 405, "ENDPOINT_NOT_FOUND", f"not {method}")
    assert response["Allow"] == "GET"


# --- unknown runs and experiments --------------------------------------------------------------

RUN_RPCS = [
    ("GET", "runs/get", {}),
    ("GET", "metrics/get-history", {"metric_key": "loss"}),
    ("POST", "runs/update", {"status": "FINISHED"}),
    ("POST", "runs/delete", {}),
    ("POST", "runs/restore", {}),
    ("POST", "runs/log-metric", {"key": "loss", "value": 1, "timestamp": 1}),
    ("POST", "runs/log-parameter", {"key": "lr", "value": "1"}),
    ("POST", "runs/set-tag", {"key": "team", "value": "x"}),
    ("POST", "runs/delete-tag", {"key": "team"}),
    ("POST", "runs/log-batch", {"params": [{"key": "lr", "value": "1"}]}),
]


@pytest.mark.parametrize(("method", "rpc", "body"), RUN_RPCS)
def test_an_unknown_run_is_resource_does_not_exist(client, run, method, rpc, body):
    before = stored(run)
    response = call(client, rpc, {"run_id": UNKNOWN_RUN, **body}, method=method)
    assert_refused(response, 404, "RESOURCE_DOES_NOT_EXIST", UNKNOWN_RUN)
    assert stored(run) == before


@pytest.mark.parametrize(("method", "rpc", "body"), RUN_RPCS)
def test_a_missing_run_id_is_named(client, method, rpc, body):
    assert_invalid(call(client, rpc, body, method=method), "'run_id'")


EXPERIMENT_RPCS = [
    ("GET", "experiments/get", {}),
    ("POST", "experiments/update", {"new_name": "renamed"}),
    ("POST", "experiments/delete", {}),
    ("POST", "experiments/restore", {}),
    ("POST", "experiments/set-experiment-tag", {"key": "team", "value": "x"}),
    ("POST", "experiments/delete-experiment-tag", {"key": "team"}),
    ("POST", "runs/create", {}),
]


@pytest.mark.parametrize(("method", "rpc", "body"), EXPERIMENT_RPCS)
def test_an_unknown_experiment_is_resource_does_not_exist(client, experiment, method, rpc, body):
    response = call(client, rpc, {"experiment_id": "987654", **body}, method=method)
    assert_refused(response, 404, "RESOURCE_DOES_NOT_EXIST", "987654")
    assert not Run.objects.exists() and not Experiment.objects.filter(name="renamed").exists()


@pytest.mark.parametrize("bad_id", ["abc", "1.5", "99999999999999999999999", ""])
@pytest.mark.parametrize(("method", "rpc", "body"), EXPERIMENT_RPCS)
def test_an_experiment_id_that_is_no_integer_is_refused(client, method, rpc, body, bad_id):
    response = call(client, rpc, {"experiment_id": bad_id, **body}, method=method)
    assert_invalid(response, "'experiment_id'")


def test_an_unknown_experiment_name_is_resource_does_not_exist(client):
    response = call(client, "experiments/get-by-name", {"experiment_name": "nope"}, method="GET")
    assert_refused(response, 404, "RESOURCE_DOES_NOT_EXIST", "Could not find experiment with name 'nope'")


# --- malformed bodies and wrong types ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"run_id": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object, got a list"),
        ('"just a string"', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_a_body_that_is_no_json_object_is_refused(client, run, body, says):
    before = stored(run)
    assert_invalid(call(client, "runs/log-batch", body), says)
    assert stored(run) == before


@pytest.mark.parametrize(
    ("rpc", "body", "says"),
    [
        ("runs/log-metric", {"key": "loss", "value": "high", "timestamp": 1}, "'value': expected a number"),
        ("runs/log-metric", {"key": "loss", "value": [1], "timestamp": 1}, "'value': expected a number"),
        ("runs/log-metric", {"key": "loss", "value": 10**400, "timestamp": 1}, "'value': 401 digits is out of range"),
        ("runs/log-metric", {"key": "loss", "value": 1, "timestamp": "yesterday"}, "'timestamp': expected an integer"),
        ("runs/log-metric", {"key": "loss", "value": 1, "timestamp": 1.5}, "'timestamp': expected an integer"),
        ("runs/log-metric", {"key": "loss", "value": 1, "timestamp": True}, "'timestamp': expected an integer"),
        ("runs/log-metric", {"key": "loss", "value": 1, "timestamp": 2**70}, "'timestamp': it is out of the 64-bit"),
        ("runs/log-metric", {"key": "loss", "value": 1, "timestamp": 1, "step": [1]}, "'step': expected an integer"),
        ("runs/log-metric", {"key": 5, "value": 1, "timestamp": 1}, "'key': expected a string, got a number"),
        ("runs/log-metric", {"value": 1, "timestamp": 1}, "Missing value for required parameter 'key'"),
        ("runs/log-metric", {"key": "loss", "timestamp": 1}, "Missing value for required parameter 'value'"),
        ("runs/log-metric", {"key": "loss", "value": 1}, "Missing value for required parameter 'timestamp'"),
        ("runs/log-parameter", {"key": "lr", "value": 0.5}, "'value': expected a string, got a number"),
        ("runs/log-parameter", {"key": {"a": 1}, "value": "x"}, "'key': expected a string, got an object"),
        ("runs/set-tag", {"key": "team", "value": ["a"]}, "'value': expected a string, got a list"),
        ("runs/set-tag", {"key": "team", "value": "a\x00b"}, "'value': it contains a NUL character"),
        ("runs/set-tag", '{"run_id": "%s", "key": "t", "value": "\\ud800"}', "'value': it is not valid Unicode"),
        ("runs/log-batch", {"metrics": {"key": "loss"}}, "'metrics': expected a list of objects, got an object"),
        ("runs/log-batch", {"metrics": ["loss"]}, "'metrics[0]': expected an object, got a string"),
        ("runs/log-batch", {"metrics": [{"key": "a", "value": 1}]}, "required parameter 'metrics[0].timestamp'"),
        ("runs/log-batch", {"params": [{"value": "x"}]}, "Missing value for required parameter 'params[0].key'"),
        ("runs/log-batch", {"params": [{"key": "p", "value": 1}]}, "'params[0].value': expected a string"),
        ("runs/log-batch", {"tags": "team=vision"}, "'tags': expected a list of objects, got a string"),
        ("runs/update", {"status": "DONE"}, "'status': expected one of RUNNING, SCHEDULED, FINISHED"),
        ("runs/update", {"end_time": "soon"}, "'end_time': expected an integer"),
        ("runs/update", {"run_name": 7}, "'run_name': expected a string"),
        ("runs/set-tag", {"run_id": 12, "key": "team", "value": "x"}, "'run_id': expected a string, got a number"),
    ],
)
def test_a_field_of_the_wrong_type_or_missing_is_refused_and_named(client, run, rpc, body, says):
    before = stored(run)
    if isinstance(body, str):
        body = body % run.run_id
    else:
        body = {"run_id": run.run_id, **body}
    assert_invalid(call(client, rpc, body), says)
    assert stored(run) == before


@pytest.mark.parametrize(
    ("rpc", "body", "says"),
    [
        ("experiments/create", {}, "Missing value for required parameter 'name'"),
        ("experiments/create", {"name": 5}, "'name': expected a string"),
        ("experiments/create", {"name": "x", "tags": {"team": "a"}}, "'tags': expected a list of objects"),
        ("experiments/create", {"name": "x", "tags": [{"value": "a"}]}, "required parameter 'tags[0].key'"),
        ("experiments/create", {"name": "x" * 501}, "501 characters long; the limit is 500"),
        (
            "experiments/create",
            {"name": "x", "tags": [{"key": "runtree.goal.loss", "value": "lowest"}]},
            "'runtree.goal.loss' must be 'min' or 'max'",
        ),
        ("experiments/update", {"experiment_id": "0"}, "Missing value for required parameter 'new_name'"),
        ("experiments/set-experiment-tag", {"experiment_id": "0", "value": "x"}, "required parameter 'key'"),
        ("experiments/set-experiment-tag", {"experiment_id": 0, "key": "k"}, "'experiment_id': expected a string"),
        ("experiments/search", {"max_results": "many"}, "'max_results': expected an integer"),
        ("experiments/search", {"view_type": "SOME"}, "'view_type': expected one of ACTIVE_ONLY"),
        ("experiments/search", {"order_by": "name"}, "'order_by': expected a list of strings"),
        ("runs/search", {"experiment_ids": "0"}, "'experiment_ids': expected a list of strings"),
        ("runs/search", {"experiment_ids": [0]}, "'experiment_ids[0]': expected a string"),
        ("runs/search", {"experiment_ids": ["zero"]}, "'experiment_ids[0]': an experiment id is a 64-bit integer"),
        ("runs/search", {"experiment_ids": ["0"], "max_results": 0}, "between 1 and 50000"),
        ("runs/search", {"experiment_ids": ["0"], "max_results": 50001}, "between 1 and 50000"),
        ("runs/search", {"experiment_ids": ["0"], "order_by": [1]}, "'order_by[0]': expected a string"),
        ("runs/search", {"experiment_ids": ["0"], "run_view_type": 9}, "'run_view_type': expected one of"),
        ("runs/search", {"experiment_ids": ["0"], "page_token": "garbage!"}, "Invalid page token"),
        ("runs/search", {"experiment_ids": ["0"], "page_token": DEEP_TOKEN}, "Invalid page token"),
        ("runs/search", {"experiment_ids": ["0"], "filter": "metrics.loss <"}, "Invalid filter at position"),
        ("runs/search", {"experiment_ids": ["0"], "order_by": ["metrics.loss UP"]}, "Invalid order_by clause"),
        ("runs/create", {"experiment_id": "0", "start_time": "now"}, "'start_time': expected an integer"),
        ("runs/create", {"experiment_id": "0", "tags": [{"key": "mlflow.user", "value": 1}]}, "'tags[0].value'"),
        ("runs/create", {"experiment_id": "0", "user_id": "u" * 251}, "User id is 251 characters long"),
        ("runs/create", {"experiment_id": "0", "run_name": "n" * 501}, "Run name is 501 characters long"),
        ("runs/create", {"experiment_id": "0", "tags": [{"key": "k" * 251, "value": "v"}]}, "the limit is 250"),
        ("runs/create", {"experiment_id": "0", "tags": [{"key": "mlflow.runName", "value": "n" * 501}]}, "is 501"),
    ],
)
def test_a_bad_experiment_create_run_or_search_request_is_refused_and_named(
    client, default_experiment, rpc, body, says
):
    before = list(Experiment.objects.values())
    assert_invalid(call(client, rpc, body), says)
    assert list(Experiment.objects.values()) == before and not Run.objects.exists()


def test_a_bad_get_history_request_is_refused(client, run):
    query = {"run_id": run.run_id, "metric_key": "loss", "max_results": 0}
    assert_invalid(call(client, "metrics/get-history", query, method="GET"), "positive")
    query = {"run_id": run.run_id}
    assert_invalid(call(client, "metrics/get-history", query, method="GET"), "metric_key")


# --- sizes -------------------------------------------------------------------------------------


def test_a_body_over_the_servers_limit_is_refused_with_the_limit(client, run, settings):
    before = stored(run)
    body = {"run_id": run.run_id, "key": "notes", "value": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    response = call(client, "runs/set-tag", body)
    assert_invalid(response, f"at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
    assert stored(run) == before


def test_a_value_over_one_mebibyte_in_a_body_under_the_limit_is_refused_with_its_size(client, run):
    before = stored(run)
    response = call(client, "runs/set-tag", {"run_id": run.run_id, "key": "notes", "value": "x" * (1024 * 1024 + 1)})
    assert_invalid(response, "'notes' value is 1048577 bytes")
    assert stored(run) == before


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"metrics": [{"key": f"m{i}", "value": 1, "timestamp": 1} for i in range(1001)]}, "1001 metrics; the limit"),
        ({"params": [{"key": f"p{i}", "value": "v"} for i in range(101)]}, "101 params; the limit is 100"),
        ({"tags": [{"key": "k" * 251, "value": "v"}]}, "251 characters long; the limit is 250"),
        ({"tags": [{"key": "../etc", "value": "v"}]}, "Invalid tag key '../etc'"),
    ],
)
def test_a_batch_over_mlflows_limits_is_refused_whole(client, run, body, says):
    before = stored(run)
    body = {"run_id": run.run_id, "params": [{"key": "fresh", "value": "1"}], **body}
    assert_invalid(call(client, "runs/log-batch", body), says)
    assert stored(run) == before


# --- MLflow's rules ----------------------------------------------------------------------------


def test_a_param_logged_again_with_another_value_is_refused_and_the_first_kept(client, run):
    before = stored(run)
    response = call(client, "runs/log-parameter", {"run_id": run.run_id, "key": "lr", "value": "0.2"})
    assert_invalid(response, "Changing param values is not allowed", "key='lr'")
    batch = {"run_id": run.run_id, "params": [{"key": "new", "value": "1"}, {"key": "lr", "value": "0.3"}]}
    assert_invalid(call(client, "runs/log-batch", batch), "key='lr'")
    assert stored(run) == before
    assert call(client, "runs/log-parameter", {"run_id": run.run_id, "key": "lr", "value": "0.1"}).status_code == 200


@pytest.mark.parametrize("rpc", ["runs/set-tag", "runs/log-batch"])
def test_making_a_run_its_own_descendants_child_is_refused_and_the_tree_kept(client, experiment, rpc):
    root, child, grandchild = build_chain(3, experiment=experiment)
    before = [stored(run) for run in (root, child, grandchild)]
    tag = {"key": "mlflow.parentRunId", "value": grandchild.run_id}
    body = {"run_id": root.run_id, **(tag if rpc == "runs/set-tag" else {"tags": [tag]})}
    assert_invalid(call(client, rpc, body), "would make a cycle", grandchild.run_id)
    assert [stored(run) for run in (root, child, grandchild)] == before


def test_a_run_cannot_be_its_own_parent(client, run):
    before = stored(run)
    body = {"run_id": run.run_id, "key": "mlflow.parentRunId", "value": run.run_id}
    assert_invalid(call(client, "runs/set-tag", body), "cannot be its own parent")
    assert stored(run) == before


def test_a_deleted_run_refuses_writes(client, run):
    services.run_set_lifecycle(run=run, stage="deleted")
    before = stored(run)
    body = {"run_id": run.run_id, "key": "loss", "value": 1, "timestamp": 1}
    assert_invalid(call(client, "runs/log-metric", body), "must be in the 'active' state")
    assert stored(run) == before


def test_creating_an_existing_experiment_is_resource_already_exists(client, experiment):
    response = call(client, "experiments/create", {"name": experiment.name})
    assert_refused(response, 400, "RESOURCE_ALREADY_EXISTS", f"'{experiment.name}' already exists")
    assert Experiment.objects.filter(name=experiment.name).count() == 1


def test_the_server_kept_root_tag_cannot_be_set_or_deleted(client, run):
    before = stored(run)
    body = {"run_id": run.run_id, "key": "mlflow.rootRunId", "value": UNKNOWN_RUN}
    assert_invalid(call(client, "runs/set-tag", body), "kept by the server")
    body = {"run_id": run.run_id, "key": "mlflow.rootRunId"}
    assert_invalid(call(client, "runs/delete-tag", body), "kept by the server")
    assert stored(run) == before
