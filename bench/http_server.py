"""Which HTTP server to run Runtree under: granian (the README's choice) against gunicorn's
threaded worker, with the same app, store and Celery worker, through the real `mlflow` client.

The sweep is bench/ingest.py's; the floor (a do-nothing server) is subtracted, so what is left is
each server's own cost per child: its HTTP layer plus the same Django app.

    .venv/bin/python bench/http_server.py            # 4 parents x 25 children, 5 repeats
    .venv/bin/python bench/http_server.py --write    # also update docs/benchmarks.md
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest, report, servers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parents", type=int, default=4)
    parser.add_argument("--children", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    started = []
    try:
        started.append(servers.start_floor())
        for http_server in ("granian", "gunicorn"):
            server = servers.start_runtree(Path(tempfile.mkdtemp(prefix="runtree-bench-")), http_server=http_server)
            server.name = http_server
            started.append(server)
        per_child: dict[str, list[float]] = {s.name: [] for s in started}
        for repeat in range(args.repeats):
            order = started[repeat % len(started) :] + started[: repeat % len(started)]
            for server in order:
                ms = ingest.measure(server.url, f"sweep-{repeat}", args.parents, args.children, seed=repeat)
                per_child[server.name].append(ms)
                print(f"repeat {repeat}: {server.name:10s} {ms:7.1f} ms/child", flush=True)
        text = render(args, per_child)
        print(text)
        if args.write:
            report.write_section("http-server", text)
    finally:
        for server in started:
            servers.stop(server)


def render(args, per_child) -> str:
    floor = statistics.median(per_child["floor"])
    lines = [
        "## HTTP server: granian or gunicorn",
        "",
        f"{report.today()} · {report.machine()} · the ingest sweep ({args.parents} parents × {args.children} children,"
        f" {args.repeats} repeats), Runtree on SQLite with a Celery worker, one server process each"
        " · `bench/http_server.py`",
        "",
        "| served by | ms per child (min / median / max) | own cost (median − floor) |",
        "| --- | --- | --- |",
    ]
    for name, values in per_child.items():
        own = "—" if name == "floor" else f"{statistics.median(values) - floor:.1f} ms"
        label = {
            "floor": "floor (do-nothing server)",
            "granian": "granian 2.8, 4 blocking threads",
            "gunicorn": "gunicorn 26, gthread, 4 threads",
        }[name]
        lines.append(f"| {label} | {report.spread(values)} | {own} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
