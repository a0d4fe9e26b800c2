"""Which HTTP server to run Runtree under: granian as the Procfile runs it (its ASGI interface,
Django on config/asgi.py's threads), granian's WSGI interface (the shape before issue 21, whose
threads wait on a stalled body forever) and gunicorn's threaded worker, with the same app, store
and Celery worker, through the real `mlflow` client.

The sweep and its rounds are bench/ingest.py's; the floor (a do-nothing server) in the same round
is subtracted, so what is left is each server's own cost per child: its HTTP layer plus the same
Django app.

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
        for http_server in ("granian", "granian-wsgi", "gunicorn"):
            server = servers.start_runtree(Path(tempfile.mkdtemp(prefix="runtree-bench-")), http_server=http_server)
            server.name = http_server
            started.append(server)
        per_child = ingest.rounds({s.name: s.url for s in started}, args.rounds, args.parents, args.children)
        text = render(args, per_child)
        print(text)
        if args.write:
            report.write_section("http-server", text)
    finally:
        for server in started:
            servers.stop(server)


def render(args, per_child) -> str:
    own = ingest.own_costs(per_child)
    lines = [
        "## HTTP server: granian (ASGI or WSGI interface) or gunicorn",
        "",
        f"{report.today()} · {report.machine()} · the ingest sweep, {args.rounds} rounds of {args.parents} parent ×"
        f" {args.children} children per server, taking turns; Runtree on SQLite with a Celery worker, one server"
        " process each · `bench/http_server.py`",
        "",
        "| served by | ms per child (min / median / max) | own cost: − floor, same round (min / median / max) |",
        "| --- | --- | --- |",
    ]
    labels = {
        "floor": "floor (do-nothing server)",
        "granian": "granian 2.8, ASGI, Django on 4 threads (config/asgi.py: the Procfile's)",
        "granian-wsgi": "granian 2.8, WSGI, 4 blocking threads",
        "gunicorn": "gunicorn 26, gthread, 4 threads",
    }
    for name, values in per_child.items():
        own_cost = "—" if name == "floor" else f"{report.spread(own[name])} ms"
        lines.append(f"| {labels[name]} | {report.spread(values)} | {own_cost} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
