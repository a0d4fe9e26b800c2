"""Where Runtree's time per child goes: the ingest sweep under py-spy, on SQLite and PostgreSQL.

Runtree is served as in bench/ingest.py (granian, one worker, a Celery worker over Redis) and
the same seed-shaped sweep logs through the real `mlflow` client while py-spy samples the
server, idle time included (a thread waiting for PostgreSQL is what it is measuring). Only
samples inside a request count; each is put in one category by the frame it was in, and in
one endpoint by the view on its stack.

py-spy slows the Python it samples, so the totals run above bench/ingest.py's own cost; read
the shares, and the database's part, which sampling does not slow. py-spy needs ptrace: run it
as root or with CAP_SYS_PTRACE.

    .venv/bin/python bench/profile_ingest.py            # 4 parents x 50 children per database
    .venv/bin/python bench/profile_ingest.py --smoke    # tiny, for CI: proves it still runs
    .venv/bin/python bench/profile_ingest.py --write    # also update docs/benchmarks.md
"""

import argparse
import collections
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest, report, servers  # noqa: E402

SAMPLES_PER_SECOND = 1000

# A sample's category, from its innermost frame (first match wins).
CATEGORIES = [
    ("commit: waiting for the database to make the transaction durable", re.compile(r"^BaseDatabaseWrapper\._commit ")),
    ("statements: driver and database", re.compile(r"^(CursorWrapper\._execute|SQLiteCursorWrapper\.execute) ")),
    # The event loop has the body before the thread gets the request (config/wsgi_pool.py).
    ("request body: taking it from the event loop's buffer", re.compile(r"^(LimitedStream\.read|RequestBody\.\w+) ")),
]
OTHER = "Python: Django, the views, validation, JSON"
SUMMARY_QUEUE = "queueing a summary refresh (Redis)"
VIEW = re.compile(r"^(\w+) \(tracker/api/mlflow/views\.py:")
ENDPOINT_NAMES = {
    "create_run": "runs/create",
    "get_run": "runs/get",
    "log_param": "runs/log-parameter",
    "log_metric": "runs/log-metric",
    "set_tag": "runs/set-tag",
    "update_run": "runs/update",
}


def profile(database_url: str | None, parents: int, children: int) -> tuple[dict, dict, float]:
    """Run the sweep under py-spy; returns (ms per child by category, by endpoint, wall ms per child)."""
    import mlflow

    py_spy = _py_spy()
    workdir = Path(tempfile.mkdtemp(prefix="runtree-profile-"))
    server = servers.start_runtree(workdir, database_url)
    try:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("profile")
        ingest._log_sweep(mlflow, random.Random(0), 1, 10, prefix="warmup")
        servers.wait_until_quiet()
        samples = workdir / "samples.txt"
        spy = subprocess.Popen(
            [py_spy, "record", "--pid", str(server.process.pid), "--subprocesses", "--idle", "--nonblocking",
             "--rate", str(SAMPLES_PER_SECOND), "--format", "raw", "--output", str(samples)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(2)  # py-spy attaches to the worker process
        started = time.perf_counter()
        ingest._log_sweep(mlflow, random.Random(1), parents, children, prefix="parent")
        wall_ms = (time.perf_counter() - started) * 1000
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
        by_category, by_endpoint = _classify(samples.read_text(), parents * children)
        return by_category, by_endpoint, wall_ms / (parents * children)
    finally:
        servers.stop(server)


def _classify(raw: str, children: int) -> tuple[dict, dict]:
    """py-spy's raw output, a line per distinct stack (`frame;frame;… count`), as ms per child."""
    by_category: dict[str, float] = collections.Counter()
    by_endpoint: dict[str, float] = collections.Counter()
    ms_per_sample = 1000 / SAMPLES_PER_SECOND / children
    for line in raw.splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        if not any(frame.startswith("WSGIHandler.__call__ ") for frame in frames):
            continue  # a thread waiting for a request, or the worker's own machinery
        category = next((name for name, leaf in CATEGORIES if leaf.match(frames[-1])), OTHER)
        if category == OTHER and any("kombu" in frame or "redis" in frame for frame in frames):
            category = SUMMARY_QUEUE
        by_category[category] += int(count) * ms_per_sample
        view = next((m.group(1) for frame in frames if (m := VIEW.match(frame))), None)
        by_endpoint[ENDPOINT_NAMES.get(view, "around the view: HTTP, routing, parsing the request, the response")] += (
            int(count) * ms_per_sample
        )
    return by_category, by_endpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parents", type=int, default=4)
    parser.add_argument("--children", type=int, default=50, help="children per parent")
    parser.add_argument("--smoke", action="store_true", help="1 parent x 25 children: proves the profile still runs")
    parser.add_argument("--write", action="store_true", help="write the results to docs/benchmarks.md")
    args = parser.parse_args()
    if args.smoke:
        # Enough calls that a sample lands inside the views even on SQLite (~0.5 ms a call).
        args.parents, args.children = 1, 25
        servers.skip_settling()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "bench_profile"], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", "bench_profile"], check=True)
    results = {
        "SQLite": profile(None, args.parents, args.children),
        "PostgreSQL": profile("postgres://postgres@127.0.0.1:5432/bench_profile", args.parents, args.children),
    }
    for database, (_, by_endpoint, _) in results.items():
        # A rename in Django or granian would leave the samples unclassified: fail, don't print zeros.
        if not any(endpoint.startswith("runs/") for endpoint in by_endpoint):
            raise SystemExit(f"{database}: no request samples were classified; has a frame name changed?")
    text = _render(args, results)
    print(text)
    if args.write:
        report.write_section("ingest-profile", text)


def _render(args, results: dict) -> str:
    names = list(results)
    lines = [
        "## Ingest: where a child's time goes",
        "",
        f"{report.today()} · {report.machine()} · PostgreSQL {report.postgres_version()} · the ingest sweep,"
        f" {args.parents} parents × {args.children} children, sampled by py-spy {_py_spy_version()} at"
        f" {SAMPLES_PER_SECOND} Hz (idle included) · `bench/profile_ingest.py`",
        "",
        "Server time inside requests, in ms per child (a child is 8 calls: create, get, 2 params,"
        " 2 metrics, a tag, end; its parent's calls are spread over its children). Sampling slows"
        " the Python it samples, so the totals run above the ingest tables' own cost.",
        "",
        "| category | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    categories = [name for name, _ in CATEGORIES] + [OTHER, SUMMARY_QUEUE]
    for category in categories:
        lines.append(f"| {category} | " + " | ".join(f"{results[n][0].get(category, 0):.2f}" for n in names) + " |")
    lines.append("| **in requests** | " + " | ".join(f"**{sum(results[n][0].values()):.2f}**" for n in names) + " |")
    lines += ["", "| endpoint | " + " | ".join(names) + " |", "| --- | " + " | ".join("---:" for _ in names) + " |"]
    endpoints = sorted({e for n in names for e in results[n][1]}, key=lambda e: -results[names[-1]][1].get(e, 0))
    for endpoint in endpoints:
        lines.append(f"| {endpoint} | " + " | ".join(f"{results[n][1].get(endpoint, 0):.2f}" for n in names) + " |")
    wall = ", ".join(f"{n} {results[n][2]:.1f} ms" for n in names)
    lines += ["", f"Client wall time per child while sampled: {wall}"]
    return "\n".join(lines)


def _py_spy() -> str:
    py_spy = shutil.which("py-spy", path=str(servers.BIN)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed: pip install -r bench/requirements.txt")
    return py_spy


def _py_spy_version() -> str:
    return subprocess.run([_py_spy(), "--version"], capture_output=True, text=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
