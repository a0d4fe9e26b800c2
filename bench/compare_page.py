"""Benchmark of the compare page: server time and response size for "compare children" of a
parent with 1,000 and with 10,000 children (params, two metrics, a 50-step loss history each).

    createdb -h 127.0.0.1 -U postgres runtree_bench_compare   # the script does it if missing
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/runtree_bench_compare .venv/bin/python bench/compare_page.py
    .venv/bin/python bench/compare_page.py --write    # also update docs/benchmarks.md
    .venv/bin/python bench/compare_page.py --smoke    # seconds: proves the bench still runs (CI)

Server time is Django's whole request (middleware, reads, figures, template) through the test
Client, with no network. The data is made once and kept; later runs reuse it. Results go to the
"Compare page" section of docs/benchmarks.md. Target: 1,000 runs under 300 ms.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# --smoke (CI: proves the bench still runs) keeps its own small database beside the real one.
SMOKE = "--smoke" in sys.argv[1:]
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/runtree_bench_compare" + ("_smoke" if SMOKE else "")
)

SIZES = [1_000, 10_000]
REPEATS = {1_000: 15, 10_000: 5}
HISTORY_STEPS = 50
TARGET_MS = {1_000: 300, 10_000: 1000}
# What each target times: at 1,000 runs the page and its history; at 10,000 the page (issue #20).
TARGET_OF = {1_000: ("page", "history"), 10_000: ("page",)}
EXPERIMENT = "bench-compare"
MIN_POINTS_PER_RUN_NOTE = "keeps 20 points a run (200,000 in all: tracker.selectors.compare.MAX_POINTS_TOTAL)"


def create_database() -> None:
    name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    result = subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], capture_output=True, text=True)
    if result.returncode and "already exists" not in result.stderr:
        sys.exit(f"createdb {name} failed: {result.stderr.strip()}")


def build(size: int):
    """A parent with `size` children in a few bulk inserts (the ingest services would take
    minutes for 500,000 history points; the rows are the same)."""
    from django.db import connection

    from tracker.constants import GOAL_TAG_PREFIX
    from tracker.models import Experiment, LatestMetric, Metric, Param, Run, RunStatus, path_segment
    from tracker.services import experiment_create, experiment_set_tag

    experiment = Experiment.objects.filter(name=EXPERIMENT).first()
    if experiment is None:
        experiment = experiment_create(name=EXPERIMENT)
        experiment_set_tag(experiment=experiment, key=GOAL_TAG_PREFIX + "accuracy", value="max")
    name = f"sweep-{size}"
    parent = Run.objects.filter(experiment=experiment, name=name).first()
    if parent is not None and Run.objects.children_of(parent).count() == size:
        return parent
    started = time.perf_counter()
    Run.objects.filter(experiment=experiment, name=name).delete()
    start_ms = 1_700_000_000_000
    parent = Run.objects.create(experiment=experiment, name=name, status=RunStatus.FINISHED, start_time=start_ms)
    parent.path = path_segment(parent.pk)
    parent.save(update_fields=["path"])
    children = Run.objects.bulk_create(
        [
            Run(
                experiment=experiment,
                name=f"{name}-trial-{i}",
                status=RunStatus.FINISHED if i % 50 else RunStatus.FAILED,
                start_time=start_ms + i * 1000,
                end_time=start_ms + i * 1000 + 60_000 + i % 977 * 100,
                parent=parent,
                parent_run_id=parent.run_id,
                depth=1,
            )
            for i in range(size)
        ],
        batch_size=2000,
    )
    for child in children:
        child.path = parent.path + path_segment(child.pk)
    Run.objects.bulk_update(children, ["path"], batch_size=2000)
    params, latest, history = [], [], []
    for i, child in enumerate(children):
        lr = [0.1, 0.03, 0.01, 0.003, 0.001][i % 5]
        optimizer = ["adam", "sgd", "rmsprop"][i % 3]
        batch = [32, 64, 128, 256][i // 5 % 4]
        params += [
            Param(run=child, key="lr", value=str(lr)),
            Param(run=child, key="optimizer", value=optimizer),
            Param(run=child, key="batch_size", value=str(batch)),
            Param(run=child, key="dataset", value="imagenet-1k"),
        ]
        final = 0.2 + (i * 7919 % 1000) / 1250
        curve = [final + 2.0 / (step + 1) for step in range(HISTORY_STEPS)]
        history += [
            Metric(run=child, key="loss", value=value, timestamp=start_ms + step, step=step)
            for step, value in enumerate(curve)
        ]
        latest += [
            LatestMetric(run=child, key="loss", value=curve[-1], timestamp=start_ms, step=HISTORY_STEPS - 1),
            LatestMetric(run=child, key="accuracy", value=1 - final / 1.2, timestamp=start_ms, step=0),
        ]
    Param.objects.bulk_create(params, batch_size=5000)
    LatestMetric.objects.bulk_create(latest, batch_size=5000)
    Metric.objects.bulk_create(history, batch_size=5000)
    with connection.cursor() as cursor:  # fresh planner statistics, as autovacuum would give them
        cursor.execute("ANALYZE")
    print(f"built {name}: {size:,} children, {len(history):,} history points in {time.perf_counter() - started:.0f} s")
    return parent


def count_queries(client, url: str) -> int:
    from django.db import connection

    executed = []
    with connection.execute_wrapper(
        lambda execute, sql, params, many, context: executed.append(sql) or execute(sql, params, many, context)
    ):
        client.get(url)
    return len(executed)


def sent_kib(client, url: str, headers: dict) -> float:
    """KiB of body sent for `url` to a client sending `headers` (e.g. one that accepts gzip)."""
    response = client.get(url, **headers)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return len(body) / 1024


def measure(parent, size: int) -> dict:
    from django.test import Client

    from bench.report import spread, timings

    client = Client()
    urls = {
        "page": f"/compare/?parent={parent.run_id}&history=loss",
        # The history chart's figure, which the page fetches once it is shown.
        "history": f"/compare/history.json?parent={parent.run_id}&history=loss",
        "csv": f"/compare/?parent={parent.run_id}&format=csv",
    }
    result = {"size": size}
    for name, url in urls.items():
        client.get(url)  # warm-up: templates compiled, connection open, caches filled
        elapsed, content = timings(client, url, REPEATS[size])
        result[name] = {"ms": elapsed, "kib": len(content) / 1024, "queries": count_queries(client, url)}
        result[name]["gzip_kib"] = sent_kib(client, url, {"HTTP_ACCEPT_ENCODING": "gzip"})
        kib, queries = result[name]["kib"], result[name]["queries"]
        print(f"{size:>6,} runs {name:>8}: {spread(elapsed)} ms, {kib:,.0f} KiB, {queries} queries")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="50 children, 2 repeats: proves the bench still runs")
    parser.add_argument("--write", action="store_true", help="write the results to docs/benchmarks.md")
    args = parser.parse_args()
    if args.smoke:
        SIZES[:] = [50]
        REPEATS[50] = 2
    create_database()
    import django

    django.setup()
    from django.core.management import call_command

    from bench.report import machine, postgres_version, spread, today, write_section

    call_command("migrate", verbosity=0)
    load_at_start = os.getloadavg()[0]
    results = [measure(build(size), size) for size in SIZES]
    lines = [
        "## Compare page",
        "",
        f"`bench/compare_page.py`, {today()}: {machine()}, PostgreSQL {postgres_version()}; "
        f"load average {load_at_start:.1f} when it started (the machine is shared).",
        f'"Compare children" of one parent whose children each have 4 params, 2 metrics and a {HISTORY_STEPS}-step '
        "`loss` history. Server time is the whole Django request through the test Client (no network), in ms, "
        "min / median / max over repeats after a warm-up. The page holds the table and three charts; the history "
        "chart's figure is fetched by the page (`history.json`), at most 200,000 points in all.",
        "",
        "| children | request | server time, ms | response | gzipped (browsers) | queries |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    labels = {"page": "page (`/compare/?parent=…`)", "history": "history chart (`history.json`)", "csv": "CSV export"}
    for result in results:
        for name, label in labels.items():
            measured = result[name]
            lines.append(
                f"| {result['size']:,} | {label} | {spread(measured['ms'])} | {measured['kib']:,.0f} KiB "
                f"| {measured['gzip_kib']:,.0f} KiB | {measured['queries']} |"
            )
    lines.append("")
    for result in results:
        target = TARGET_MS.get(result["size"])
        if target:
            timed = TARGET_OF[result["size"]]
            slowest = max(statistics.median(result[name]["ms"]) for name in timed)
            verdict = "met" if slowest < target else "**missed**"
            lines.append(
                f"Target: {result['size']:,} runs under {target} ms (median of the {' and its '.join(timed)}): "
                f"{verdict}."
            )
    lines.append(
        'Server time is measured without compression (a client that does not ask for it); "gzipped" is what a '
        "browser, which asks, is sent (tracker/web/compression.py; CSV downloads go out as they are). "
        "At 10,000 runs the page is the first 500 rows of the table (dashboard/diff_table.py TABLE_ROWS; it "
        "pages) and three charts of 10,000 runs each, and "
        f"the history {MIN_POINTS_PER_RUN_NOTE}; both grow linearly with the runs, in the same number of queries."
    )
    print("\n".join(lines))
    if args.write and not args.smoke:
        write_section("compare-page", "\n".join(lines))
        print("wrote the Compare page section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
