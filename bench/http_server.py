"""Which HTTP server to run Runtree under: granian as the Procfile runs it (its ASGI interface,
Django on config/asgi.py's threads), granian's WSGI interface (the shape before issue 21, whose
threads wait on a stalled body forever), gunicorn's threaded worker and uvicorn (the same ASGI
app and pool of threads as granian's row), with the same store and Celery worker, through the
real `mlflow` client.

The sweep and its rounds are bench/ingest.py's; the floor (a do-nothing server) in the same round
is subtracted, so what is left is each server's own cost per child: its HTTP layer plus the same
Django app. Beside it, the CPU each server's processes and its Celery worker used over the rounds
(Linux's /proc), per child: the client waits for the server, so a server's own cost is about
its CPU, while the worker's runs on the other core.

    .venv/bin/python bench/http_server.py            # 20 rounds of 1 parent x 25 children
    .venv/bin/python bench/http_server.py --write    # also update docs/benchmarks.md
    .venv/bin/python bench/http_server.py --smoke    # tiny, for CI: proves the bench still runs
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest, report, servers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--parents", type=int, default=1)
    parser.add_argument("--children", type=int, default=25)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="1 round of 1 x 3: proves the bench still runs (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.children, args.write = 1, 3, False
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    started = []
    try:
        started.append(servers.start_floor())
        for http_server in ("granian", "granian-wsgi", "gunicorn", "uvicorn"):
            server = servers.start_runtree(Path(tempfile.mkdtemp(prefix="runtree-bench-")), http_server=http_server)
            server.name = http_server
            started.append(server)
        cpu_before = {}

        def count_cpu():
            cpu_before.update(cpu_used(started))

        per_child = ingest.rounds(
            {s.name: s.url for s in started}, args.rounds, args.parents, args.children, before_rounds=count_cpu
        )
        children = args.rounds * args.parents * args.children
        cpu_ms = {
            name: tuple((now - then) * 1000 / children for now, then in zip(used, cpu_before[name], strict=True))
            for name, used in cpu_used(started).items()
        }
        text = render(args, per_child, cpu_ms)
        print(text)
        if args.write:
            report.write_section("http-server", text)
    finally:
        for server in started:
            servers.stop(server)


def cpu_used(started) -> dict[str, tuple[float, float]]:
    """CPU seconds so far of each server's processes and of its helpers (Runtree's worker)."""
    return {
        s.name: (servers.cpu_seconds(s.process), sum(servers.cpu_seconds(helper) for helper in s.helpers))
        for s in started
    }


def render(args, per_child, cpu_ms) -> str:
    own = ingest.own_costs(per_child)
    lines = [
        "## HTTP server: granian (ASGI or WSGI interface), gunicorn or uvicorn",
        "",
        f"{report.today()} · {report.machine()} · the ingest sweep, {args.rounds} rounds of {args.parents} parent ×"
        f" {args.children} children per server, taking turns; Runtree on SQLite with a Celery worker, one server"
        " process each · `bench/http_server.py`",
        "",
        "| served by | ms per child (min / median / max) | own cost: − floor, same round (min / median / max)"
        " | server CPU ms per child | its worker's CPU ms per child |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    labels = {
        "floor": "floor (do-nothing server)",
        "granian": "granian 2.8, ASGI, Django on 4 threads (config/asgi.py: the Procfile's)",
        "granian-wsgi": "granian 2.8, WSGI, 4 blocking threads",
        "gunicorn": "gunicorn 26, gthread, 4 threads",
        "uvicorn": "uvicorn 0.55, uvloop, httptools, Django on 4 threads (the same config/asgi.py)",
    }
    for name, values in per_child.items():
        own_cost = "—" if name == "floor" else f"{report.spread(own[name])} ms"
        server_cpu, worker_cpu = cpu_ms[name]
        worker = "—" if name == "floor" else f"{worker_cpu:.1f}"
        lines.append(f"| {labels[name]} | {report.spread(values)} | {own_cost} | {server_cpu:.1f} | {worker} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
