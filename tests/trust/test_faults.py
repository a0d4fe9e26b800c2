"""Faults: the database going away is a 503 the mlflow client retries, leaves nothing
half-written, and ends by itself; other errors show no stack trace."""

import contextlib
import os
import select
import subprocess
import threading
import time
from collections import Counter

import mlflow
import psycopg2
import pytest
import requests
from django.db import OperationalError, connection
from django.db.backends.postgresql.base import DatabaseWrapper as DjangoPostgreSQL
from django.test import Client
from mlflow import MlflowClient

from tests.trust.conftest import (
    ON_POSTGRESQL,
    SERVER_APPLICATION_NAME,
    Server,
    postgresql_url_of_test_database,
    requires_postgresql,
    reset_mlflow,
)
from tracker import services
from tracker.api.mlflow import views as mlflow_views
from tracker.models import Experiment, Metric, Param, Run, RunTag
from tracker.selectors import experiments as experiment_reads
from tracker.summaries import refresh as summary_refresh

LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"


def batch_body(run_id: str) -> dict:
    return {
        "run_id": run_id,
        "params": [{"key": f"p{i}", "value": str(i)} for i in range(5)],
        "metrics": [
            {"key": "loss", "value": 1 / (s + 1), "timestamp": 1_700_000_000_000 + s, "step": s} for s in range(20)
        ],
        "tags": [{"key": "stage", "value": "tuning"}],
    }


def assert_batch_stored_once(run: Run):
    assert Param.objects.filter(run=run).count() == 5
    assert Metric.objects.filter(run=run).count() == 20
    assert RunTag.objects.filter(run=run, key="stage").count() == 1


def cut_the_connection():
    """Lose the database in the middle of a transaction, as a restart or a network cut does."""
    if ON_POSTGRESQL:
        # The server ends this very session; the statement fails as the next one would.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    raise OperationalError("database is locked")  # SQLite's outage: the lock outlasted the busy timeout


@pytest.fixture
def cut_once_mid_write(monkeypatch):
    """The next log-batch loses its database after its params are written, before its metrics."""
    real_insert_metrics = services.runs._insert_metrics
    calls = []

    def insert_metrics(run, metrics):
        calls.append(run.run_id)
        if len(calls) == 1:
            cut_the_connection()
        return real_insert_metrics(run, metrics)

    monkeypatch.setattr(services.runs, "_insert_metrics", insert_metrics)
    return calls


@pytest.fixture
def run(transactional_db):
    experiment = Experiment.objects.create(name="faults", creation_time=0, last_update_time=0)
    return services.run_create(experiment=experiment, name="victim")


# --- in-process: the rule ---------------------------------------------------------------------------


def test_a_write_cut_mid_transaction_is_a_503_leaving_nothing_and_the_retry_stores_it_once(
    live_server, run, cut_once_mid_write
):
    response = requests.post(live_server.url + LOG_BATCH, json=batch_body(run.run_id), timeout=30)
    assert response.status_code == 503
    assert response.json() == {
        "error_code": "TEMPORARILY_UNAVAILABLE",
        "message": "The database is unavailable; try again shortly.",
    }
    assert cut_once_mid_write == [run.run_id]  # the cut happened after the params were written...
    assert not Param.objects.filter(run=run).exists()  # ...and they were rolled back
    assert not Metric.objects.filter(run=run).exists()
    response = requests.post(live_server.url + LOG_BATCH, json=batch_body(run.run_id), timeout=30)
    assert response.status_code == 200
    assert_batch_stored_once(run)


def test_a_write_rolled_back_for_a_concurrent_one_is_a_503_that_says_so(live_server, run, monkeypatch):
    # PostgreSQL's deadlock (40P01) or serialization failure (40001): the database is there,
    # so "unavailable" would mislead whoever reads the log or the client's exception.
    class Deadlock(Exception):
        pgcode = "40P01"

    def conflicted(run, metrics):
        try:
            raise Deadlock("deadlock detected")
        except Deadlock as error:
            raise OperationalError("deadlock detected") from error

    monkeypatch.setattr(services.runs, "_insert_metrics", conflicted)
    response = requests.post(live_server.url + LOG_BATCH, json=batch_body(run.run_id), timeout=30)
    assert response.status_code == 503
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "rolled back for a concurrent one" in response.json()["message"]
    assert not Param.objects.filter(run=run).exists()


def test_the_mlflow_client_retries_a_503_and_the_batch_arrives_once(live_server, run, cut_once_mid_write, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    client = MlflowClient(tracking_uri=live_server.url)
    body = batch_body(run.run_id)
    client.log_batch(
        run.run_id,
        metrics=[mlflow.entities.Metric(m["key"], m["value"], m["timestamp"], m["step"]) for m in body["metrics"]],
        params=[mlflow.entities.Param(p["key"], p["value"]) for p in body["params"]],
        tags=[mlflow.entities.RunTag("stage", "tuning")],
    )
    assert len(cut_once_mid_write) == 2  # refused once, then stored
    assert_batch_stored_once(run)


def test_a_create_run_whose_answer_cannot_be_read_leaves_no_run_to_duplicate(live_server, run, monkeypatch):
    """The client retries a 503; had the run been committed before the answer failed, the retry
    would create it a second time."""
    real_new_run_to_dict = mlflow_views.new_run_to_dict
    calls = []

    def new_run_to_dict(run):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_new_run_to_dict(run)

    monkeypatch.setattr(mlflow_views, "new_run_to_dict", new_run_to_dict)
    body = {"experiment_id": str(run.experiment_id), "run_name": "retried"}
    response = requests.post(live_server.url + "/api/2.0/mlflow/runs/create", json=body, timeout=30)
    assert response.status_code == 503
    assert not Run.objects.filter(name="retried").exists()
    response = requests.post(live_server.url + "/api/2.0/mlflow/runs/create", json=body, timeout=30)
    assert response.status_code == 200
    assert Run.objects.filter(name="retried").count() == 1


def test_a_failing_summary_refresh_after_the_commit_does_not_fail_the_write(live_server, run, monkeypatch):
    """Without a broker the refresh runs in the request, after the write has committed: its
    failure must not turn into an error the client would retry (logging the batch twice)."""

    def lost(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(summary_refresh, "refresh_tree", lost)
    child = services.run_create(
        experiment=run.experiment, name="child", tags=[services.KeyValue("mlflow.parentRunId", run.run_id)]
    )
    response = requests.post(live_server.url + LOG_BATCH, json=batch_body(child.run_id), timeout=30)
    assert response.status_code == 200
    assert_batch_stored_once(child)
    assert Run.objects.get(pk=run.pk).summary_stale  # the repair will catch up


def test_a_page_shows_the_outage_in_the_products_look(client, monkeypatch, db):
    def lost(**kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(experiment_reads, "experiments_overview", lost)
    response = client.get("/")
    assert response.status_code == 503
    assert b"Temporarily unavailable" in response.content
    assert b'class="topbar"' in response.content
    assert b"Connection refused" not in response.content


def test_a_database_lost_inside_a_middleware_is_a_503_too(settings, monkeypatch, db):
    settings.RUNTREE_AUTH = "required"
    from tracker.web import auth

    def lost(raw_token):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(auth, "user_for_token", lost)
    response = Client(raise_request_exception=False).get(
        "/api/2.0/mlflow/experiments/search", headers={"Authorization": "Bearer x"}
    )
    assert response.status_code == 503
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


def test_an_api_500_is_json_without_a_stack_trace(monkeypatch, db):
    def bug(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "experiment_create", bug)
    response = Client(raise_request_exception=False).post(
        "/api/2.0/mlflow/experiments/create", {"name": "x"}, content_type="application/json"
    )
    assert response.status_code == 500
    assert response.json() == {
        "error_code": "INTERNAL_ERROR",
        "message": "Internal server error; the server log has the details.",
    }


def test_a_page_500_is_the_products_page_without_a_stack_trace(monkeypatch, db):
    def bug(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(experiment_reads, "experiments_overview", bug)
    response = Client(raise_request_exception=False).get("/")
    assert response.status_code == 500
    assert b"Something went wrong" in response.content
    assert b"secret internals" not in response.content
    assert b"Traceback" not in response.content


def test_a_404_is_json_on_the_apis_and_a_page_elsewhere(client, db):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b'class="topbar"' in response.content
    assert b"/no-such-page/" in response.content


def test_a_bad_host_is_a_400_in_json_on_the_apis_and_a_page_elsewhere(client, db):
    response = client.get("/api/v1/experiments/", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    response = client.get("/", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert b"Bad request" in response.content


# --- a real server on PostgreSQL ------------------------------------------------------------------


@contextlib.contextmanager
def admin_connection():
    """A connection to the cluster's `postgres` database, to act on the test database from outside."""
    db = connection.settings_dict
    admin = psycopg2.connect(
        dbname="postgres", user=db["USER"], password=db["PASSWORD"] or None, host=db["HOST"], port=db["PORT"] or 5432
    )
    admin.autocommit = True
    try:
        yield admin.cursor()
    finally:
        admin.close()


def server_backends(cursor) -> set[int]:
    """The sessions of the server under test (on the test database only)."""
    cursor.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
        [connection.settings_dict["NAME"], SERVER_APPLICATION_NAME],
    )
    return {pid for (pid,) in cursor.fetchall()}


def terminate_server_backends(cursor) -> set[int]:
    pids = server_backends(cursor)
    for pid in pids:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    return pids


@pytest.fixture
def production_server(transactional_db):
    """One worker of one thread: one persistent database connection, as in production."""
    connection.ensure_connection()
    server = Server(postgresql_url_of_test_database(), workers=1, threads=1).start()
    yield server
    server.stop()


@requires_postgresql
def test_a_persistent_connection_killed_while_idle_is_replaced_without_an_error(production_server):
    search = production_server.url + "/api/2.0/mlflow/experiments/search"
    assert requests.get(search, timeout=10).status_code == 200
    with admin_connection() as admin:
        killed = terminate_server_backends(admin)
        assert len(killed) == 1  # the worker's persistent connection
        # The health check notices the dead connection before the request uses it.
        assert requests.get(search, timeout=10).status_code == 200
        assert server_backends(admin).isdisjoint(killed)


@requires_postgresql
def test_the_health_check_asks_the_server_only_about_a_connection_it_dropped(transactional_db, monkeypatch):
    """config/postgresql: a healthy idle connection is used without a `SELECT 1` first (one round
    trip saved on every request); one the server ended is still found and replaced."""
    asked = []
    django_check = DjangoPostgreSQL.is_usable
    monkeypatch.setattr(DjangoPostgreSQL, "is_usable", lambda wrapper: asked.append(1) or django_check(wrapper))

    def backend_pid_of_next_request() -> int:
        connection.close_if_unusable_or_obsolete()  # what Django does as each request starts
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    pid = backend_pid_of_next_request()
    assert backend_pid_of_next_request() == pid
    assert asked == []
    with admin_connection() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    select.select([connection.connection.fileno()], [], [], 10)  # the server's goodbye arrives
    assert backend_pid_of_next_request() != pid
    assert asked == [1]


@requires_postgresql
def test_while_the_database_refuses_connections_requests_get_503_and_service_resumes_by_itself(production_server):
    name = connection.settings_dict["NAME"]
    search = production_server.url + "/api/2.0/mlflow/experiments/search"
    with admin_connection() as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            terminate_server_backends(admin)
            response = requests.get(search, timeout=10)
            assert response.status_code == 503
            assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
            page = requests.get(production_server.url + "/", timeout=10)
            assert page.status_code == 503
            assert "Temporarily unavailable" in page.text
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert requests.get(search, timeout=10).status_code == 200


@requires_postgresql
def test_the_mlflow_client_rides_out_an_outage(production_server, monkeypatch):
    """The outage ends 2 s into the client's retries; the write arrives once."""
    name = connection.settings_dict["NAME"]
    experiment = Experiment.objects.create(name="outage", creation_time=0, last_update_time=0)
    run = services.run_create(experiment=experiment, name="survivor")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "6")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    client = MlflowClient(tracking_uri=production_server.url)
    with admin_connection() as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        terminate_server_backends(admin)
        reopen = threading.Timer(2.0, admin.execute, [f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'])
        reopen.start()
        try:
            started = time.monotonic()
            client.log_param(run.run_id, "lr", "0.01")
            client.log_metric(run.run_id, "loss", 0.5, step=1)
            assert time.monotonic() - started >= 1.5  # it did wait for the database
        finally:
            reopen.join()
    assert list(Param.objects.filter(run=run).values_list("key", "value")) == [("lr", "0.01")]
    assert Metric.objects.filter(run=run).count() == 1
    assert "Database unavailable" in production_server.stop()


@requires_postgresql
@pytest.mark.skipif(
    os.environ.get("RUNTREE_ALLOW_PG_RESTART") != "1",
    reason="restarts the whole PostgreSQL cluster (breaks other suites running on it); set RUNTREE_ALLOW_PG_RESTART=1",
)
def test_a_sweep_survives_a_postgresql_restart(transactional_db, monkeypatch):
    """The real scenario: `pg_ctlcluster 15 main restart` in the middle of the seed workload.
    The client's default retries carry it through, and every run and value arrives once."""
    from tests.api import seed000_nested_tuning

    connection.ensure_connection()
    Experiment.objects.get_or_create(pk=0, defaults={"name": "Default", "creation_time": 0, "last_update_time": 0})
    server = Server(postgresql_url_of_test_database(), workers=2, threads=2).start()
    mlflow.set_tracking_uri(server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    failures = []

    def sweep():
        try:
            seed000_nested_tuning.run_workload()
        except Exception as error:  # reported by the assertion below
            failures.append(error)

    worker = threading.Thread(target=sweep)
    try:
        worker.start()
        while Run.objects.count() < 20:  # well into the sweep
            time.sleep(0.2)
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"], check=True)
        worker.join(timeout=600)
    finally:
        reset_mlflow()
        log = server.stop()
        # The restart ended this test's own session too.
        connection.close()
    assert not failures, (failures, log[-5000:])
    assert "Database unavailable" in log  # the sweep did meet the outage
    names = Counter(Run.objects.values_list("parent__name", "name"))
    assert [name for name, count in names.items() if count > 1] == []  # no run made twice by a retry
    assert Run.objects.count() == 90
    assert Param.objects.count() == 150
    assert Counter(Metric.objects.values_list("run_id", flat=True)) == Counter(
        {pk: 2 for pk in Run.objects.filter(parent__isnull=False).values_list("pk", flat=True)}
    )
    assert RunTag.objects.filter(key="test_identifier").count() == 90


# --- the Celery broker down -------------------------------------------------------------------------


@pytest.fixture
def broker_down():
    """Celery sends to a broker that refuses connections (nothing listens on port 1)."""
    from config.celery_app import app

    def forget_producer_pools():
        # The app caches producer pools bound to the broker it first used.
        app._pool = None
        if "amqp" in app.__dict__:
            app.amqp._producer_pool = None

    saved = app.conf.broker_url, app.conf.task_always_eager
    app.conf.broker_url, app.conf.task_always_eager = "redis://127.0.0.1:1/0", False
    forget_producer_pools()
    yield app
    app.conf.broker_url, app.conf.task_always_eager = saved
    forget_producer_pools()


def test_with_the_broker_down_writes_succeed_and_the_repair_catches_up_when_it_returns(
    broker_down, tracking_uri, caplog
):
    from tests.api import seed000_nested_tuning
    from tracker import tasks
    from tracker.models import RunSummary

    mlflow.set_experiment("broker down")
    seed000_nested_tuning.execute_tuning(0)  # a parent and 5 children, each logging 2 params and 2 metrics

    assert Run.objects.count() == 6
    assert (Param.objects.count(), Metric.objects.count()) == (10, 10)
    assert "broker unreachable" in caplog.text
    parent = Run.objects.get(parent__isnull=True)
    assert parent.summary_stale
    assert not RunSummary.objects.exists()

    broker_down.conf.task_always_eager = True  # the broker is back, and a worker takes the tasks
    tasks.repair_stale_summaries()  # what beat runs every RUNTREE_SUMMARY_REPAIR_SECONDS

    parent.refresh_from_db()
    assert not parent.summary_stale
    assert sorted(RunSummary.objects.filter(run=parent).values_list("key", "count")) == [
        ("metric1", 5),
        ("metric2", 5),
    ]
