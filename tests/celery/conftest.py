"""Celery integration tests: real `celery` worker and beat processes, sharing the test database
with pytest and its live server, on each broker Runtree is served with: Redis (production, `make
up`) and a folder on disk (`make run`, config/file_broker.py).

The Redis broker is RUNTREE_TEST_BROKER_URL (default redis://127.0.0.1:6379/15); these tests flush
that Redis database. An unreachable broker fails the test that needs it: never a skip.
"""

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import override_settings

from config import file_broker
from config.celery_app import app as celery_app

# The mlflow client against a live server, set up as the API tests do it (Nagle off, connections
# closed before the test database is dropped, the client's state reset).
from tests.api.conftest import (  # noqa: F401
    client_connections_closed_at_the_end,
    tracking_uri,
)
from tracker import tasks

BROKER_URL = os.environ.get("RUNTREE_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]


def make_run_broker_url() -> str:
    """The broker `make run` serves with, read from the Makefile, so these tests follow it."""
    found = re.search(r"^run: export CELERY_BROKER_URL \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert found, "the Makefile's run target no longer sets CELERY_BROKER_URL"
    return found.group(1)


CELERY = str(Path(sys.executable).with_name("celery"))
READY_TIMEOUT_S = 30


def _share_the_sqlite_test_database() -> None:
    """Workers are other processes: they cannot see SQLite's in-memory test database, so give it
    a file. Done when this conftest is imported (collection, before any database is set up)
    rather than in a django_db_modify_db_settings override, which a session-scoped database
    already set up for tests collected earlier would ignore. PostgreSQL's test database is
    shared as it is."""
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and not database.setdefault("TEST", {}).get("NAME"):
        folder = tempfile.mkdtemp(prefix="runtree-celery-tests-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        database["TEST"]["NAME"] = str(Path(folder) / "test.sqlite3")


_share_the_sqlite_test_database()


def worker_database_url() -> str:
    """The test database (set up by now) as a DATABASE_URL for another process."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _forget_producer_pools() -> None:
    """Even eager calls make the app's producer pool, bound to whatever broker was configured
    then (the default amqp://): drop it when switching brokers, so the next send uses the new one.
    Dropped, not closed: kombu keeps producer pools in a global registry and would hand a closed
    one back."""
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")  # a cached property: only if it was made
    if amqp is not None:
        amqp._producer_pool = None


class RedisBroker:
    """Production's broker (`make up`): the test Redis database, flushed before use."""

    name = "redis"

    def __init__(self, folder: Path):
        self.url = BROKER_URL

    def empty(self) -> None:
        """Fail (never skip) without Redis; else drop every queued message, as a Redis restart
        without persistence would."""
        try:
            redis.Redis.from_url(BROKER_URL, socket_connect_timeout=3).flushdb()
        except redis.exceptions.RedisError as exc:
            pytest.fail(f"The Celery integration tests need Redis at {BROKER_URL} (RUNTREE_TEST_BROKER_URL): {exc}")

    def settings(self) -> dict:
        return {"broker_url": self.url}

    def environment(self) -> dict:
        return {"CELERY_BROKER_URL": self.url}


class FolderBroker:
    """`make run`'s broker: a folder of its own for each test."""

    name = "folder"

    def __init__(self, folder: Path):
        self.url = make_run_broker_url()
        self.folder = folder / "broker"

    def empty(self) -> None:
        for message in (self.folder / "queue").glob("*"):
            message.unlink()

    def queued(self) -> int:
        return len(list((self.folder / "queue").glob("*.msg")))

    def settings(self) -> dict:
        return {"broker_url": self.url, **file_broker.celery_settings(self.folder)}

    def environment(self) -> dict:
        return {"CELERY_BROKER_URL": self.url, "RUNTREE_BROKER_FOLDER": str(self.folder)}


BROKERS = {broker.name: broker for broker in (RedisBroker, FolderBroker)}


class CeleryCluster:
    """Worker and beat processes on the test broker, and this process's Celery app sending to it."""

    def __init__(self, folder: Path, broker: str = "redis"):
        self.folder = folder
        self.broker = BROKERS[broker](folder)
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.saved_conf = None

    def connect(self) -> None:
        """Start from an empty broker and send this process's tasks there."""
        if self.saved_conf is not None:
            return
        self.broker.empty()
        conf = celery_app.conf
        changed = {**self.broker.settings(), "task_always_eager": False}
        self.saved_conf = {key: conf.get(key) for key in changed}
        conf.update(changed)
        _forget_producer_pools()
        # As a server with a broker runs: refreshes wait a moment so a burst rides on one.
        self.delayed_refresh = override_settings(RUNTREE_SUMMARY_REFRESH_DELAY_MS=500)
        self.delayed_refresh.enable()
        tasks._queued_here.clear()

    def start(self, kind: str, *, repair_seconds: int = 30) -> subprocess.Popen:
        """Start `celery worker` (solo pool) or `celery beat` and wait until it is ready."""
        self.connect()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": worker_database_url(),
            **self.broker.environment(),
            "RUNTREE_SUMMARY_REPAIR_SECONDS": str(repair_seconds),
        }
        if kind == "worker":
            args = ["worker", "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            args += ["--hostname", f"runtree-test-{uuid.uuid4().hex[:8]}@%h"]
            ready = "ready."
        else:
            args = ["beat", "--schedule", str(self.folder / f"beat-{uuid.uuid4().hex[:8]}")]
            ready = "beat: Starting..."
        name = f"{kind}-{len(self.logs)}"
        log = self.folder / f"{name}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [CELERY, "-A", "config", *args, "--loglevel=info"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[kind], self.logs[name] = process, log
        deadline = time.monotonic() + READY_TIMEOUT_S
        while ready not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"celery {kind} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        return process

    def kill(self, kind: str) -> None:
        """SIGKILL: no warm shutdown, no chance to finish or acknowledge the task in hand."""
        process = self.processes.pop(kind)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def lose_queued_tasks(self) -> None:
        """Empty the broker, as a Redis restart without persistence would."""
        self.broker.empty()

    def stop(self) -> None:
        """SIGKILL, not a warm shutdown: the test is over, and on the folder broker a worker takes
        3-5 s to shut down warm (Celery's blocking loop for transports without an event loop)."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes.values():
            process.wait(timeout=10)
        self.processes.clear()
        if self.saved_conf is not None:
            celery_app.conf.update(self.saved_conf)
            self.saved_conf = None
            _forget_producer_pools()
            self.delayed_refresh.disable()
            tasks._queued_here.clear()

    def log_text(self) -> str:
        return "\n".join(f"--- {name}\n{path.read_text()[-4000:]}" for name, path in self.logs.items())


@pytest.fixture(params=list(BROKERS))
def cluster(tmp_path, request):
    """Celery processes for one test, on each broker in turn, stopped at its end (failures quote
    their logs).

    Set up after the live server and database, so it is torn down before them: no worker
    holds the test database open while it is flushed or dropped."""
    request.getfixturevalue("tracking_uri")
    cluster = CeleryCluster(tmp_path, request.param)
    yield cluster
    cluster.stop()
