"""Bounded work per request: a query the database refuses for its size or its time is the
client's 400 (which it does not retry), never a 503 outage; a NUL in a URL never reaches the
database."""

import json
import time

import pytest
from django.db import OperationalError, connection
from django.test import Client

from tests.trust.conftest import ON_POSTGRESQL, requires_postgresql
from tracker.api.mlflow import views as mlflow_views
from tracker.models import Experiment, Metric, Run
from tracker.selectors import experiments as experiment_reads
from tracker.web import faults
from tracker.web.statement_timeout import use_statement_timeout

API = "/api/2.0/mlflow/"


def post(client, rpc: str, body: dict):
    return client.post(API + rpc, json.dumps(body), content_type="application/json")


@pytest.fixture
def experiment(db):
    return Experiment.objects.create(name="bounded", creation_time=0, last_update_time=0)


@pytest.fixture
def lenient_client():
    return Client(raise_request_exception=False)


@pytest.fixture
def no_leftover_timeout():
    # These tests run outside a test transaction (a cut statement would abort it), so the
    # session keeps its limit afterwards unless told otherwise.
    yield
    use_statement_timeout(None)


def test_an_order_by_of_70_metrics_is_a_400_not_a_503(lenient_client, experiment):
    """SQLite joins at most 64 tables: an order_by of 70 metric keys cannot run, however often
    it is retried (the probe got a 503, which the mlflow client retries for minutes)."""
    order_by = [f"metrics.m{i} DESC" for i in range(70)]
    response = post(lenient_client, "runs/search", {"experiment_ids": [str(experiment.pk)], "order_by": order_by})
    if ON_POSTGRESQL:
        assert response.status_code in (200, 400)  # PostgreSQL has no such limit
    else:
        assert response.status_code == 400
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.skipif(ON_POSTGRESQL, reason="SQLite's own limits")
@pytest.mark.parametrize(
    "sql",
    [
        " UNION ALL ".join(["SELECT 1"] * 600),  # too many terms in compound SELECT
        "SELECT " + "+".join(["1"] * 1100),  # Expression tree is too large
    ],
    ids=["compound", "expression"],
)
def test_sqlites_deterministic_limits_are_a_client_error_not_an_outage(db, sql):
    with pytest.raises(OperationalError) as caught, connection.cursor() as cursor:
        cursor.execute(sql)
    assert faults.client_limit_error(caught.value)


def test_a_lost_database_is_still_an_outage(db):
    assert faults.client_limit_error(OperationalError("database is locked")) is None
    assert faults.client_limit_error(OperationalError("server closed the connection unexpectedly")) is None


def test_a_limit_error_in_a_page_is_a_400_page_not_a_503(lenient_client, monkeypatch, db):
    def too_large(**kwargs):
        raise OperationalError("at most 64 tables in a join")

    monkeypatch.setattr(experiment_reads, "experiments_overview", too_large)
    response = lenient_client.get("/")
    assert response.status_code == 400
    assert b"too large for the database" in response.content


# --- PostgreSQL's statement timeout on reads ---------------------------------------------------------


def pg_sleep(seconds: float):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])


@requires_postgresql
def test_a_read_cut_by_the_statement_timeout_is_a_400_the_client_does_not_retry(
    lenient_client, transactional_db, settings, monkeypatch, no_leftover_timeout
):
    settings.RUNTREE_STATEMENT_TIMEOUT_MS = 200
    experiment = Experiment.objects.create(name="bounded", creation_time=0, last_update_time=0)
    real = mlflow_views.runs_to_dicts

    def slow(rows):
        pg_sleep(5)
        return real(rows)

    monkeypatch.setattr(mlflow_views, "runs_to_dicts", slow)
    started = time.monotonic()
    response = post(lenient_client, "runs/search", {"experiment_ids": [str(experiment.pk)]})
    assert time.monotonic() - started < 2
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "RUNTREE_STATEMENT_TIMEOUT_MS" in response.json()["message"]


@requires_postgresql
def test_a_page_cut_by_the_statement_timeout_says_so(
    lenient_client, transactional_db, settings, monkeypatch, no_leftover_timeout
):
    settings.RUNTREE_STATEMENT_TIMEOUT_MS = 200
    monkeypatch.setattr(experiment_reads, "experiments_overview", lambda **kwargs: pg_sleep(5))
    response = lenient_client.get("/")
    assert response.status_code == 400
    assert b"took longer than" in response.content


@requires_postgresql
def test_writes_are_never_cut_even_on_a_session_a_read_limited(
    lenient_client, transactional_db, settings, monkeypatch, no_leftover_timeout
):
    """Sessions outlive requests: the write after a read must not inherit the read's limit."""
    settings.RUNTREE_STATEMENT_TIMEOUT_MS = 200
    experiment = Experiment.objects.create(name="bounded", creation_time=0, last_update_time=0)
    run = Run.objects.create(experiment=experiment, path="000000000001/")
    assert lenient_client.get("/").status_code == 200  # this session now has the read limit
    real = mlflow_views.services.run_log_batch

    def slow(**kwargs):
        pg_sleep(0.5)
        return real(**kwargs)

    monkeypatch.setattr(mlflow_views.services, "run_log_batch", slow)
    metric = {"key": "loss", "value": 1.0, "timestamp": 1, "step": 0}
    response = post(lenient_client, "runs/log-batch", {"run_id": run.run_id, "metrics": [metric]})
    assert response.status_code == 200, response.content
    assert Metric.objects.filter(run=run).count() == 1


# --- NUL in a URL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/runs/%00/", "/compare/?runs=%00", "/?q=%00", "/experiments/1/?filter=%00", "/api/v1/runs/?filter=%00"],
)
def test_a_nul_in_a_url_is_a_400_not_a_500(lenient_client, db, url):
    response = lenient_client.get(url)
    assert response.status_code in (400, 404)
