"""A fuzzer over every MLflow RPC, every native endpoint and every page's query string, with the
values that broke the server before: numbers past 64 bits, digit strings past Python's 4,300
digit limit, NUL, lone surrogates and odd unicode, infinities, wrong types. None may answer 5xx.

Counts are printed at the end of each test (run with -s to see them): requests sent, and
answers by status code."""

import json
import math
import os
import re
from collections import Counter
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracker import services as ingest
from tracker.api.mlflow import urls as mlflow_urls
from tracker.constants import PARENT_RUN_ID_TAG
from tracker.models import Experiment
from tracker.services import KeyValue, MetricInput


def mlflow_rpcs() -> list[tuple[str, str]]:
    """(path, method) for every MLflow RPC the server routes, read off its URL patterns, so an
    endpoint added later is fuzzed too; a path parameter gets a hostile value of its own."""
    rpcs = []
    for pattern in mlflow_urls.urlpatterns:
        route = str(pattern.pattern)
        for method in getattr(pattern.callback, "http_methods", ()):
            rpcs.append((route, method))
    return sorted(rpcs)


PATH_VALUES = ["m-0123456789abcdef", "9" * 5000, "%00", "%ED%A0%80", "..%2F..%2Fetc", "x" * 2000]
MLFLOW_FIELDS = [
    "experiment_id", "experiment_ids", "experiment_name", "name", "new_name", "artifact_location",
    "run_id", "run_uuid", "run_name", "user_id", "start_time", "end_time", "status", "key", "value",
    "timestamp", "step", "metric_key", "max_results", "page_token", "filter", "order_by",
    "run_view_type", "view_type", "tags", "metrics", "params", "path", "model_id", "source_run_id",
    "datasets", "inputs", "outputs", "models", "filter_string", "experiment_ids", "order_by",
]  # fmt: skip
PAGE_FIELDS = [
    "q", "show_deleted", "filter", "sort", "page", "per_page", "columns", "expanded", "collapsed",
    "selected", "best", "offset", "level", "runs", "run", "parent", "parents", "metric", "x",
    "history", "diff", "format", "matches",
]  # fmt: skip
NATIVE_FIELDS = ["limit", "offset", "filter", "order_by", "experiment_id", "show_deleted", "view_type", "format"]

INT64_MAX = 2**63 - 1
HUGE_INTS = st.sampled_from([INT64_MAX, INT64_MAX + 1, -(2**63), -(2**63) - 1, 10**30, -(10**30), 2**64])
ODD_TEXT = st.sampled_from(
    [
        "9" * 5000,
        "-" + "9" * 5000,
        "0" * 5000 + "1",
        "1e999",
        "-1e999",
        "NaN",
        "Infinity",
        "-Infinity",
        "\x00",
        "a\x00b",
        "\ud800",
        "\U0001f600" * 100,
        "\u202e\u200b\ufeff",
        "'" * 50,
        "(" * 60,
        "metrics.m < " + "9" * 5000,
        "tags.t = 'x' AND " * 300 + "tags.t = 'x'",
        "params.p IN (" + ",".join(f"'{i}'" for i in range(3000)) + ")",
        str(INT64_MAX + 1),
        "1733000000000000000",
        "x" * 100_000,
    ]
)
SCALARS = st.one_of(
    HUGE_INTS,
    ODD_TEXT,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.booleans(),
    st.none(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
METRIC = st.fixed_dictionaries({}, optional={name: VALUES for name in ("key", "value", "timestamp", "step")})


def fields_from(names: list[str], known: dict) -> st.SearchStrategy:
    """Some of `names`, each a hostile value or (often) a valid one, so requests get past the
    first check and reach the deeper ones."""
    value_for = {name: st.one_of(VALUES, st.just(known[name])) if name in known else VALUES for name in names}
    value_for["metrics"] = st.lists(METRIC, max_size=3)
    return st.fixed_dictionaries({}, optional={name: value_for.get(name, VALUES) for name in names})


def to_query(fields: dict) -> str:
    parts = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            text = item if isinstance(item, str) else json.dumps(item)
            parts.append(f"{name}={quote(text.encode('utf-8', 'surrogatepass'), safe='')}")
    return "&".join(parts)


class Counts:
    def __init__(self, name: str):
        self.name = name
        self.statuses = Counter()
        self.failures: list[str] = []

    def record(self, method: str, url: str, response):
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.failures.append(f"{response.status_code} {method} {url[:300]}")

    def report(self):
        total = sum(self.statuses.values())
        print(f"\n[fuzz] {self.name}: {total} requests, by status {dict(sorted(self.statuses.items()))}")
        assert self.failures == [], self.failures[:20]


@pytest.fixture
def world(transactional_db):
    """An experiment with a parent, a child and a metric history, so ids in requests can be real."""
    experiment = Experiment.objects.create(name="fuzz", creation_time=0, last_update_time=0)
    parent = ingest.run_create(experiment=experiment, name="parent", tags=[KeyValue("team", "a")])
    child = ingest.run_create(experiment=experiment, name="child", tags=[KeyValue(PARENT_RUN_ID_TAG, parent.run_id)])
    ingest.run_log_batch(
        run=child,
        metrics=[MetricInput("loss", 0.5, 1, 0), MetricInput("loss", math.inf, 2, 1)],
        params=[KeyValue("p", "1")],
    )
    return {
        "experiment_id": str(experiment.pk),
        "experiment_ids": [str(experiment.pk)],
        "run_id": child.run_id,
        "parent": parent.run_id,
        "key": "loss",
        "metric_key": "loss",
        "experiment_name": "fuzz",
    }


# RUNTREE_FUZZ_EXAMPLES=5000 for a long run; 250 per test keeps the suite quick.
FUZZ = settings(
    max_examples=int(os.environ.get("RUNTREE_FUZZ_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
CLIENT = Client(raise_request_exception=False)


def test_mlflow_rpcs_never_answer_5xx(world):
    counts = Counts("MLflow RPCs")

    @FUZZ
    @given(
        rpc=st.sampled_from(mlflow_rpcs()),
        path_value=st.sampled_from(PATH_VALUES),
        fields=fields_from(MLFLOW_FIELDS, world),
        raw=st.booleans(),
    )
    def send(rpc, path_value, fields, raw):
        route, method = rpc
        url = "/api/2.0/mlflow/" + re.sub(r"<[^>]+>", path_value, route)
        if method == "GET":
            url += "?" + to_query(fields)
            response = CLIENT.get(url)
        else:
            body = json.dumps(fields, allow_nan=True).encode("utf-8", "surrogatepass")
            if raw:  # numbers as bare JSON literals, past what json.dumps writes
                body = body.replace(b'"9999', b"9999")
            response = CLIENT.generic(method, url, body, content_type="application/json")
        counts.record(method, url, response)

    send()
    counts.report()


def test_native_api_never_answers_5xx(world):
    counts = Counts("native API")
    paths = [
        "/api/v1/experiments/",
        f"/api/v1/experiments/{world['experiment_id']}/",
        "/api/v1/runs/",
        f"/api/v1/runs/{world['run_id']}/",
        f"/api/v1/runs/{world['parent']}/children/",
        f"/api/v1/runs/{world['parent']}/subtree/",
        f"/api/v1/runs/{world['run_id']}/ancestors/",
        f"/api/v1/runs/{world['parent']}/summary/",
        "/api/v1/schema/",
    ]
    odd_ids = ["9" * 5000, str(INT64_MAX + 1), "-1", "%00", "%F0%9F%98%80"]
    paths += [f"/api/v1/experiments/{odd}/" for odd in odd_ids] + [f"/api/v1/runs/{odd}/" for odd in odd_ids]

    @FUZZ
    @given(
        path=st.sampled_from(paths),
        fields=fields_from(NATIVE_FIELDS, world),
        method=st.sampled_from(["GET", "OPTIONS", "HEAD"]),
    )
    def send(path, fields, method):
        url = path + "?" + to_query(fields)
        response = CLIENT.generic(method, url)
        counts.record(method, url, response)

    send()
    counts.report()


def test_pages_never_answer_5xx(world):
    counts = Counts("pages")
    experiment = world["experiment_id"]
    paths = [
        "/",
        f"/experiments/{experiment}/",
        f"/runs/{world['parent']}/",
        f"/runs/{world['run_id']}/",
        f"/runs/{world['parent']}/children/",
        "/compare/",
        "/compare/history.json",
        "/api/v1/docs/",
        f"/experiments/{INT64_MAX + 1}/",
        f"/experiments/{'9' * 5000}/",
        "/runs/%00/",
        "/runs/%ED%A0%80/",
        "/accounts/login/",
    ]
    known = {"parent": world["parent"], "runs": world["run_id"], "run": world["run_id"], "metric": "loss"}

    @FUZZ
    @given(path=st.sampled_from(paths), fields=fields_from(PAGE_FIELDS, known))
    def send(path, fields):
        url = path + "?" + to_query(fields)
        response = CLIENT.get(url)
        counts.record("GET", url, response)

    send()
    counts.report()
