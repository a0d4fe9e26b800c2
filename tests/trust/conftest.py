"""Fixtures for the trust tests: users with roles and tokens, the mlflow client pointed at a
live server, and a real granian server (own process, persistent database connections) for
the fault and concurrency tests."""

import gc
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.core.servers.basehttp import WSGIRequestHandler
from django.db import connection
from mlflow.tracking import fluent
from mlflow.utils import request_utils

from tracker.web.auth import token_issue, user_set_role

PROJECT_DIR = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
requires_postgresql = pytest.mark.skipif(
    not ON_POSTGRESQL, reason="needs PostgreSQL: run with DATABASE_URL=postgres://..."
)


@pytest.fixture
def auth_required(settings):
    settings.RUNTREE_AUTH = "required"


def make_user(name: str, role: str | None, *, password: str = PASSWORD) -> User:
    user = User.objects.create_user(name, password=password)
    if role:
        user_set_role(user=user, role=role)
    return user


@pytest.fixture
def writer(transactional_db):
    return make_user("wanda", "writer")


@pytest.fixture
def viewer(transactional_db):
    return make_user("victor", "viewer")


@pytest.fixture
def writer_token(writer):
    return token_issue(user=writer)


@pytest.fixture
def viewer_token(viewer):
    return token_issue(user=viewer)


@pytest.fixture
def tracking_uri(live_server, default_experiment, monkeypatch):
    """The mlflow client pointed at the live server, with no retries and a short timeout so a
    refusal shows at once; its module-level state is reset afterwards."""
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    mlflow.set_tracking_uri(live_server.url)
    yield live_server.url
    reset_mlflow()


@pytest.fixture(autouse=True)
def live_server_connections(monkeypatch):
    # Django's test server writes a response's headers and body in two packets, and Nagle's
    # algorithm holds the second until the client's delayed ACK: ~40 ms a request without this.
    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)
    yield
    # The mlflow client pools keep-alive connections: each holds a live-server thread open, and
    # with it a database session that would keep the test database from being dropped. Only
    # after a test that used the client: a full collection walks the whole session's heap (~0.5 s
    # late in a run).
    if request_utils._cached_get_request_session.cache_info().currsize:
        request_utils._cached_get_request_session.cache_clear()
        gc.collect()


def reset_mlflow():
    while mlflow.active_run():
        mlflow.end_run()
    fluent._active_experiment_id = None
    # set_experiment exports the active experiment's id to the environment.
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.set_tracking_uri(None)


# --- a real server in its own process -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """granian serving Runtree as the Procfile does (config/asgi.py: `threads` threads per worker
    process): its own process, its own (persistent) database connections."""

    def __init__(self, database_url: str, *, workers: int, threads: int, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DEBUG": "0",
            "RUNTREE_AUTH": "off",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "RUNTREE_WEB_THREADS": str(threads),
            **(env or {}),
        }
        self.env.pop("CELERY_BROKER_URL", None)
        self.args = [
            str(Path(sys.executable).with_name("granian")),
            "--interface=asgi",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--workers={workers}",
            "--workers-kill-timeout=5",
            "config.asgi:application",
        ]
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            self.args, cwd=PROJECT_DIR, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"granian exited:\n{self.process.stdout.read()}")
            try:
                requests.get(f"{self.url}/api/2.0/mlflow/experiments/search", timeout=5)
                return self
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("granian did not start within 60 s")

    def stop(self) -> str:
        """Stop the server; its output (the log), for a failing test to show."""
        if self.process is None:
            return ""
        self.process.terminate()
        try:
            output, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        self.process = None
        return output or ""


# The sessions of a server started here carry this name in pg_stat_activity.
SERVER_APPLICATION_NAME = "runtree-test-server"


def postgresql_url_of_test_database() -> str:
    """The URL of the test database pytest-django made, for a server in another process."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{db['USER']}{password}@{host}/{db['NAME']}?application_name={SERVER_APPLICATION_NAME}"


def migrated_sqlite_url(directory: Path) -> str:
    """A fresh SQLite file database with Runtree's tables (for a server in another process:
    pytest-django's SQLite test database lives in memory, invisible to it)."""
    url = f"sqlite:///{directory / 'runtree.sqlite3'}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=PROJECT_DIR, env=env, check=True
    )
    return url
