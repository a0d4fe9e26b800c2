"""Import from a running MLflow tracking server: `manage.py import_mlflow http://...`, reading a
run's history one call per metric key and its models with one get_run, over loopback and
through a proxy that delays every piece of data by a network's latency, with the runs of a chunk
read one at a time or by the importer's pool of reader threads
(tracker/importing/tracking_server.py `read_threads`).

The store is bench/import_mlflow.py's (trees of 100 runs, 5 params, 2 metrics x 10 steps), served
by `mlflow server`; each import goes into a fresh SQLite database.

    .venv/bin/python bench/import_server.py               # 2,000 runs
    .venv/bin/python bench/import_server.py --write       # also update docs/benchmarks.md
    .venv/bin/python bench/import_server.py --smoke       # seconds, for CI: proves the bench still runs
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, servers  # noqa: E402
from bench.import_mlflow import build_store  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# One way, each piece of data: a request and its answer take twice this more than over loopback.
LATENCY_MS = 10
# Runs the import in its own process (Django set up on the given database) with `threads` readers.
IMPORT = """
import sys, time, django
django.setup()
from django.core.management import call_command
from tracker.importing.tracking_server import TrackingServerSource
call_command("migrate", verbosity=0)
TrackingServerSource.read_threads = int(sys.argv[1])
started = time.perf_counter()
call_command("import_mlflow", sys.argv[2], verbosity=0)
print(time.perf_counter() - started)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="100 runs: proves the bench still runs (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.write = 100, False
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    workdir = Path(tempfile.mkdtemp(prefix="runtree-bench-import-server-"))
    build_store(workdir / "mlflow.db", args.runs, seed=7)
    mlflow = servers.start_mlflow(workdir, f"sqlite:///{workdir / 'mlflow.db'}")
    proxy_port = servers.free_port()
    proxy = subprocess.Popen(
        [sys.executable, __file__, "--proxy", str(proxy_port), mlflow.url.rsplit(":", 1)[1], str(LATENCY_MS)]
    )
    try:
        servers.wait_until_up(f"http://127.0.0.1:{proxy_port}", proxy)
        rows = []
        for latency, url in ((0, mlflow.url), (LATENCY_MS, f"http://127.0.0.1:{proxy_port}")):
            for threads in (1, 8):
                seconds = import_once(url, threads, workdir / f"runtree-{latency}-{threads}.sqlite3")
                rows.append((latency, threads, seconds))
                print(f"latency {latency} ms, {threads} reader(s): {seconds:.1f} s", flush=True)
    finally:
        proxy.terminate()
        servers.stop(mlflow)
    text = render(args, rows)
    print(text)
    if args.write:
        report.write_section("import-server", text)


def import_once(url: str, threads: int, database: Path) -> float:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("CELERY_BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT, str(threads), url], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def render(args, rows) -> str:
    by_latency = {}
    for latency, threads, seconds in rows:
        by_latency.setdefault(latency, {})[threads] = seconds
    lines = [
        "## Import from a tracking server",
        "",
        f"{report.today()} · {report.machine()} · {args.runs:,} runs (bench/import_mlflow.py's store) served by"
        " `mlflow server` (one worker, SQLite), imported into SQLite with `manage.py import_mlflow http://...`;"
        f" the network's latency added by a proxy delaying each piece of data {LATENCY_MS} ms each way"
        " · `bench/import_server.py`",
        "",
        "| between the two | runs read one at a time | 8 reader threads (the importer's) | speed-up |",
        "| --- | ---: | ---: | ---: |",
    ]
    for latency, seconds in by_latency.items():
        where = "loopback" if latency == 0 else f"+{latency} ms each way"
        one, eight = seconds[1], seconds[8]
        lines.append(
            f"| {where} | {one:.1f} s ({args.runs / one:,.0f} runs/s) | {eight:.1f} s ({args.runs / eight:,.0f}"
            f" runs/s) | {one / eight:.1f}× |"
        )
    return "\n".join(lines)


async def delay_proxy(listen: int, target: int, delay_ms: float) -> None:
    """Forward 127.0.0.1:`listen` to `target`, each piece of data held `delay_ms` first."""

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                await asyncio.sleep(delay_ms / 1000)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--proxy"]:
        asyncio.run(delay_proxy(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
    else:
        started = time.perf_counter()
        main()
        print(f"({time.perf_counter() - started:.0f} s in all)")
