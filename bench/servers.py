"""Start the tracking servers a benchmark compares, each as a subprocess on a free loopback port.

Every server gets its own fresh store, one worker, and is stopped when the benchmark ends.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The Procfile's server and options (one worker process here): granian's ASGI interface, Django
# on config/asgi.py's pool of threads (RUNTREE_WEB_THREADS, 4 by default).
APPLICATION = "config.asgi:application"
# gunicorn's threaded worker (bench/http_server.py compares it): its threads keep connections alive.
GUNICORN_OPTIONS = ["-k", "gthread", "--threads", "4", "-w", "1", "--log-level", "warning"]
GRANIAN_OPTIONS = ["--interface", "asgi", "--workers", "1", "--log-level", "warning"]
# The shape before it (bench/http_server.py compares): granian's WSGI interface and its own 4
# threads, which wait on a client's body with no time limit.
GRANIAN_WSGI_COMMAND = [
    "--interface", "wsgi", "--workers", "1", "--blocking-threads", "4", "--log-level", "warning",
    "config.wsgi:application",
]  # fmt: skip
# bench/http_server.py also runs the Procfile's app under uvicorn (uvloop, httptools): the same
# pool of threads, with the HTTP parsing on the event loop's own thread instead of granian's.
UVICORN_OPTIONS = ["--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"]
BIN = Path(sys.executable).parent


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen
    helpers: list[subprocess.Popen] = field(default_factory=list)  # e.g. Runtree's Celery worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answered: that is up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server for {url} did not come up in {timeout:.0f} s")


def _busy_cores(interval: float) -> float:
    """How many cores' worth of CPU the whole machine used over `interval` seconds (/proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:]]
        idle = ticks[3] + ticks[4]  # idle and iowait
        return sum(ticks) - idle, sum(ticks)

    busy_before, total_before = sample()
    time.sleep(interval)
    busy_after, total_after = sample()
    cores = os.cpu_count() or 1
    return cores * (busy_after - busy_before) / max(total_after - total_before, 1)


# A smoke run times nothing worth a settled machine, and beside CI's test suite the machine never
# settles: each wait used to take its whole timeout (90 s of CI's time per benchmark).
_settle = True


def skip_settling() -> None:
    """For `--smoke`: wait_until_quiet returns at once."""
    global _settle
    _settle = False


def wait_until_quiet(*, below_cores: float = 0.3, timeout: float = 90.0) -> float:
    """Wait for the machine to settle after starting servers; returns the seconds waited.

    `mlflow server` 3.17 starts a job runner and seven huey consumers, each importing mlflow:
    about 20 s of CPU on a 2-core machine after its HTTP port already answers. Measuring in
    that time charged its start-up to whichever server went first (Runtree's 38 ms search
    measured 59 ms)."""
    started = time.monotonic()
    while _settle and time.monotonic() - started < timeout:
        if _busy_cores(1.0) < below_cores and _busy_cores(1.0) < below_cores:
            break
    return time.monotonic() - started


def _start(name: str, command: list[str], port: int, env: dict | None = None, cwd=None) -> Server:
    log = open(Path(tempfile.gettempdir()) / f"bench-{name}-{port}.log", "w")
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, process)
    return Server(name, url, process)


def stop(server: Server) -> None:
    for process in (server.process, *server.helpers):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def cpu_seconds(process: subprocess.Popen) -> float:
    """CPU seconds, user and system, used so far by `process` and its live descendants (Linux's
    /proc): granian's worker processes, Celery's pool."""
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry))
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [process.pid]
    while pending:
        pid = pending.pop()
        total += used.get(pid, 0.0)
        pending += children.get(pid, [])
    return total


# A Redis database of its own, so a benchmark never drains a developer's or a test's queue.
BENCH_BROKER_URL = "redis://127.0.0.1:6379/13"


# `make run`'s broker: a folder (config/file_broker.py).
EMBEDDED_BROKER_URL = "filesystem://localhost/"


def start_runtree(
    workdir: Path, database_url: str | None = None, *, http_server: str = "granian", broker: str = "redis"
) -> Server:
    """Runtree as the README says to serve it: granian (here one process; it keeps the client's
    connection alive) with summaries handed to a Celery worker, not computed inside the request.
    `broker="redis"`: production's broker; `broker="folder"`: the embedded default, as `make run`
    serves it (a folder, no server). `http_server="gunicorn"`: its threaded worker instead of
    granian; `"granian-wsgi"`: granian's WSGI interface; `"uvicorn"`: the same ASGI app under
    uvicorn (bench/http_server.py)."""
    port = free_port()
    env = {
        "DATABASE_URL": database_url or f"sqlite:///{workdir / 'runtree.sqlite3'}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CELERY_BROKER_URL": BENCH_BROKER_URL,
    }
    if broker == "folder":
        env |= {"CELERY_BROKER_URL": EMBEDDED_BROKER_URL, "RUNTREE_BROKER_FOLDER": str(workdir / "broker")}
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **env}, check=True
    )
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "config", "worker", "--pool=solo", "--loglevel=warning", "--without-heartbeat"],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    command = {
        "granian": [
            str(BIN / "granian"),
            *GRANIAN_OPTIONS,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            APPLICATION,
        ],
        "granian-wsgi": [str(BIN / "granian"), "--host", "127.0.0.1", "--port", str(port), *GRANIAN_WSGI_COMMAND],
        "gunicorn": [str(BIN / "gunicorn"), "config.wsgi", *GUNICORN_OPTIONS, "-b", f"127.0.0.1:{port}"],
        "uvicorn": [str(BIN / "uvicorn"), *UVICORN_OPTIONS, "--host", "127.0.0.1", "--port", str(port), APPLICATION],
    }[http_server]
    try:
        server = _start("runtree", command, port, env, cwd=ROOT)
    except Exception:
        os.killpg(worker.pid, signal.SIGKILL)
        raise
    server.helpers.append(worker)
    return server


def start_mlflow(workdir: Path, database_url: str | None = None) -> Server:
    port = free_port()
    store = database_url or f"sqlite:///{workdir / 'mlflow.db'}"
    command = [
        str(BIN / "mlflow"), "server", "--backend-store-uri", store, "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--default-artifact-root", str(workdir / "mlflow-artifacts"),
    ]  # fmt: skip
    return _start("mlflow", command, port, cwd=workdir)


def start_fasttrackml(workdir: Path, database_url: str | None = None) -> Server | None:
    """FastTrackML where it installs (bench/requirements.txt); None where it does not."""
    fml = shutil.which("fml", path=str(BIN)) or shutil.which("fml")
    if fml is None:
        return None
    port = free_port()
    store = database_url or f"sqlite://{workdir / 'fasttrackml.db'}"
    command = [fml, "server", "--listen-address", f"127.0.0.1:{port}", "--database-uri", store, "--log-level", "warn"]
    return _start("fasttrackml", command, port, cwd=workdir)


def start_floor() -> Server:
    """A do-nothing server with canned answers: what is left is the client's own cost."""
    port = free_port()
    command = [str(BIN / "python"), str(Path(__file__).with_name("floor_server.py")), str(port)]
    return _start("floor", command, port)
