"""Tree page benchmark: server time of the run-tree pages on 111,001 runs in PostgreSQL.

The experiment (built once, with bulk inserts, and kept for the next run) holds 1,000 parents ×
100 children plus one parent with 10,000 children, with params, latest metrics and tags shaped
like the seeds. Each page is requested through Django's test Client in this process, so a
figure is the server's whole time for the request: queries, template rendering, middleware.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/runtree_bench_tree .venv/bin/python bench/tree_page.py
        --repeats N   requests per page (default 9, after one warm-up)
        --rebuild     drop the experiment and build it again
        --write       also update the "Tree page" section of docs/benchmarks.md
        --explain     print EXPLAIN ANALYZE of the slowest query of each page
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.db.models import CharField, OuterRef, Subquery, Value  # noqa: E402
from django.db.models.functions import Cast, Concat, LPad  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench import report  # noqa: E402
from tracker import services  # noqa: E402
from tracker.models import PATH_SEGMENT_WIDTH, Experiment, LatestMetric, Param, Run, RunStatus, RunTag  # noqa: E402

BENCH_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/runtree_bench_tree"
EXPERIMENT = "bench-tree"
PARENTS, CHILDREN, BIG_CHILDREN = 1_000, 100, 10_000
TARGET_MS = 150
BATCH = 10_000
FILTER = "tags.subset = 'a' AND metrics.metric1 < 0.1"
# Held by most trees: the page takes its broad path (tracker.selectors.tree._BroadMatches).
BROAD_FILTER = "tags.subset = 'a'"


def build() -> Experiment:
    """The experiment, in bulk: runs, then paths in two UPDATEs, then tags, params, metrics."""
    Experiment.objects.filter(name=EXPERIMENT).delete()
    experiment = services.experiment_create(name=EXPERIMENT)
    rng = random.Random(20231123)
    start = int(time.time() * 1000) - 86_400_000
    clock = iter(range(start, start + 10**9, 10))

    def new_run(name, parent=None):
        begin = next(clock)
        return Run(
            experiment=experiment,
            name=name,
            user_id="bench",
            status=RunStatus.FINISHED,
            start_time=begin,
            end_time=begin + rng.randint(1_000, 600_000),
            parent=parent,
            parent_run_id=parent.run_id if parent else "",
            depth=1 if parent else 0,
        )

    # The big parent starts first, so it sits on the last page of roots, not the first one.
    parents = Run.objects.bulk_create([new_run("big_parent")] + [new_run(f"parent_{p}") for p in range(PARENTS)])
    big = parents[0]
    children = [new_run(f"big_child_{c}", big) for c in range(BIG_CHILDREN)]
    for p, parent in enumerate(parents[1:]):
        children += [new_run(f"run_{c}_test_{p}", parent) for c in range(CHILDREN)]
    children = Run.objects.bulk_create(children, batch_size=BATCH)
    segment = Concat(LPad(Cast("id", CharField()), PATH_SEGMENT_WIDTH, Value("0")), Value("/"))
    Run.objects.filter(experiment=experiment, depth=0).update(path=segment)
    parent_path = Subquery(Run.objects.filter(pk=OuterRef("parent_id")).values("path")[:1])
    Run.objects.filter(experiment=experiment, depth=1).update(path=Concat(parent_path, segment))

    tags, params, metrics = [], [], []
    for p, parent in enumerate(parents):
        tags += [
            RunTag(run=parent, key="mlflow.runName", value=parent.name),
            RunTag(run=parent, key="mlflow.rootRunId", value=parent.run_id),
        ]
        tags.append(RunTag(run=parent, key="round", value=f"round_{p % 10}"))
    root_of = {parent.pk: parent.run_id for parent in parents}
    for child in children:
        tags += [
            RunTag(run=child, key="mlflow.runName", value=child.name),
            RunTag(run=child, key="mlflow.parentRunId", value=child.parent_run_id),
            RunTag(run=child, key="mlflow.rootRunId", value=root_of[child.parent_id]),
            RunTag(run=child, key="subset", value=rng.choice("abcd")),
        ]
        params += [
            Param(run=child, key="param1", value=rng.choice(["x", "y", "z"])),
            Param(run=child, key="param2", value=str(rng.choice([0.1, 0.01, 0.001]))),
        ]
        metrics += [
            LatestMetric(run=child, key="metric1", value=rng.random(), timestamp=child.end_time, step=9),
            LatestMetric(run=child, key="metric2", value=abs(rng.gauss(5, 2.5)), timestamp=child.end_time, step=9),
        ]
    for model, rows in ((RunTag, tags), (Param, params), (LatestMetric, metrics)):
        model.objects.bulk_create(rows, batch_size=BATCH)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # fresh statistics and visibility maps, as autovacuum would leave them
    return experiment


def pages(experiment: Experiment) -> list[tuple[str, str]]:
    big = Run.objects.get(experiment=experiment, name="big_parent")
    tree = f"/experiments/{experiment.id}/"
    columns = "params.param1,metrics.metric1"
    return [
        ("First page of roots", tree),
        ("Expand the 10,000-child parent (children partial)", f"/runs/{big.run_id}/children/?level=1"),
        (f"Filter `{FILTER}`", tree + "?" + urlencode({"filter": FILTER})),
        (f"Broad filter `{BROAD_FILTER}` (1 run in 4)", tree + "?" + urlencode({"filter": BROAD_FILTER})),
        (
            "First page, 2 columns, sorted by metric1",
            tree + "?" + urlencode({"columns": columns, "sort": "-metrics.metric1"}),
        ),
        (
            "Big parent expanded on the page",
            tree + "?" + urlencode({"expanded": big.run_id, "page": 21, "columns": columns}),
        ),
        (
            "Big parent's children sorted by metric1",
            f"/runs/{big.run_id}/children/?level=1&columns={columns}&sort=-metrics.metric1",
        ),
        ("Run page of the big parent", f"/runs/{big.run_id}/"),
    ]


def measure(client: Client, url: str, repeats: int) -> tuple[list[float], int, tuple[float, str]]:
    response = client.get(url)  # warm-up: caches, connection, compiled templates
    assert response.status_code == 200, (url, response.status_code)
    timings = []
    for _ in range(repeats):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
    slowest = max((float(q["time"]) * 1000, q["sql"]) for q in queries.captured_queries)
    return timings, len(queries.captured_queries), slowest


def explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    args.load = os.getloadavg()[0]
    if connection.vendor != "postgresql":
        sys.exit(f"Set DATABASE_URL={BENCH_DATABASE_URL} (createdb it, then migrate).")

    experiment = Experiment.objects.filter(name=EXPERIMENT).first()
    expected = 1 + PARENTS + BIG_CHILDREN + PARENTS * CHILDREN
    if args.rebuild or experiment is None or experiment.runs.count() != expected:
        started = time.perf_counter()
        experiment = build()
        print(f"built {expected:,} runs in {time.perf_counter() - started:.0f} s", flush=True)

    client = Client()
    rows = []
    for label, url in pages(experiment):
        timings, query_count, (slowest_ms, slowest_sql) = measure(client, url, args.repeats)
        verdict = "ok" if statistics.median(timings) < TARGET_MS else "OVER"
        rows.append((label, timings, query_count, slowest_ms))
        print(
            f"{label:55s} {report.spread(timings):>22s} ms  {query_count:2d} queries"
            f"  slowest {slowest_ms:.1f} ms  {verdict}"
        )
        if args.explain:
            print(explain(slowest_sql), "\n")
    if args.write:
        report.write_section("tree-page", render(args, rows))
        print(f"wrote {report.DOC}")


def render(args, rows) -> str:
    lines = [
        "## Tree page",
        "",
        f"`bench/tree_page.py`, {report.today()}. Machine: {report.machine()}; PostgreSQL "
        f"{report.postgres_version()}; load average {args.load:.1f} when it started (the machine is shared).",
        "",
        f"One experiment of {1 + PARENTS + BIG_CHILDREN + PARENTS * CHILDREN:,} runs: {PARENTS:,} parents × "
        f"{CHILDREN} children plus one parent with {BIG_CHILDREN:,} children; every child has 2 params, 2 latest "
        "metrics and 4 tags. Server time per request through Django's test Client (queries, rendering, "
        f"middleware), {args.repeats} requests after a warm-up, in ms. Target: under {TARGET_MS} ms.",
        "",
        "| Page | min / median / max (ms) | queries | slowest query (ms) |",
        "|---|---|---|---|",
    ]
    for label, timings, query_count, slowest_ms in rows:
        lines.append(f"| {label} | {report.spread(timings)} | {query_count} | {slowest_ms:.1f} |")
    lines += [
        "",
        "Under a filter the costly step is evaluating it once over the experiment (the tag and metric rows "
        "it names); the page reads up to 50,000 matches in that one pass and works out the rest from them "
        "(tracker/selectors/tree.py, `_Matches`). A filter that most trees hold is never evaluated over the "
        "experiment: the page asks its roots in order and reads its own trees' matches (`_BroadMatches`). "
        "The rest of each figure is mostly rendering the rows.",
        "",
        "Reproduce: `createdb -h 127.0.0.1 -U postgres runtree_bench_tree`, migrate, then "
        f"`DATABASE_URL={BENCH_DATABASE_URL} .venv/bin/python bench/tree_page.py --write`",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
