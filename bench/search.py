"""Search benchmark: the same 100,000 runs in Runtree and in `mlflow server`, same queries.

The runs (1,000 parents × 100 children, params/metrics/tags shaped like the seeds) are written
once into an MLflow PostgreSQL store, then brought into Runtree with `import_mlflow` — so both
servers hold exactly the same data. Each server runs with one worker on its own database.

    .venv/bin/python bench/search.py             # 1,000 × 100, 15 repeats
    .venv/bin/python bench/search.py --smoke     # 20 × 10, Runtree only: proves the bench still runs
    .venv/bin/python bench/search.py --write     # also update docs/benchmarks.md
    .venv/bin/python bench/search.py --reuse     # search the stores an earlier run built (same sizes)
    .venv/bin/python bench/search.py --reuse --alone  # Runtree alone, no server taking turns with it
    .venv/bin/python bench/search.py --reuse --alone --gap 0.4  # ... idle 0.4 s before each request

The smoke run builds its own small databases, so it never replaces the full-size stores that
`--reuse` searches.
"""

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, servers  # noqa: E402

MLFLOW_DB = os.environ.get("BENCH_SEARCH_MLFLOW_DB", "bench_search_mlflow")
RUNTREE_DB = os.environ.get("BENCH_SEARCH_RUNTREE_DB", "bench_search_runtree")
SMOKE_SUFFIX = "_smoke"
PG = "postgresql://postgres@127.0.0.1:5432/"
# SQLAlchemy 2.1 reads plain postgresql:// as psycopg 3; MLflow's store here runs on psycopg2.
PG_SQLALCHEMY = "postgresql+psycopg2://postgres@127.0.0.1:5432/"
IDENTIFIERS = 50  # parents are tagged id_0 .. id_49, so one identifier selects 2% of the runs


def recreate_database(name: str) -> None:
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", name], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)


SEED = 7


def probe_of(seed: int = SEED) -> dict:
    """The values the queries look for: the first parent's run id (the first id drawn from the
    seeded generator, as build_mlflow_store draws it) and one identifier."""
    return {"parent_run_id": uuid.UUID(int=random.Random(seed).getrandbits(128)).hex, "identifier": "id_7"}


def build_mlflow_store(parents: int, children: int, seed: int = SEED) -> dict:
    """Write the runs straight into MLflow's own tables (its REST API would take hours)."""
    import psycopg2
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    recreate_database(MLFLOW_DB)
    SqlAlchemyStore(PG_SQLALCHEMY + MLFLOW_DB, tempfile.mkdtemp())  # creates MLflow's schema
    rng = random.Random(seed)
    now = int(time.time() * 1000) - 86_400_000
    rows = {name: io.StringIO() for name in ("runs", "tags", "params", "metrics", "latest_metrics")}
    probe = {}
    clock = 0
    for p in range(parents):
        parent_id = uuid.UUID(int=rng.getrandbits(128)).hex
        identifier = f"id_{p % IDENTIFIERS}"
        family = [(parent_id, f"parent_{p}", None)]
        family += [(uuid.UUID(int=rng.getrandbits(128)).hex, f"run_{c}_test_{p}", parent_id) for c in range(children)]
        for run_id, name, parent in family:
            clock += 1
            start = now + clock * 10
            rows["runs"].write(
                f"{run_id}\t{name}\tLOCAL\tbench.py\t\tbench\tFINISHED\t{start}\t{start + 5}\t\tactive\t"
                f"mlflow-artifacts:/1/{run_id}/artifacts\t1\n"
            )
            rows["tags"].write(f"mlflow.runName\t{name}\t{run_id}\n")
            rows["tags"].write(f"test_identifier\t{identifier}\t{run_id}\n")
            if parent:
                rows["tags"].write(f"mlflow.parentRunId\t{parent}\t{run_id}\n")
                rows["params"].write(f"param1\t{rng.choice('abc')}\t{run_id}\n")
                rows["params"].write(f"param2\t{rng.choice('def')}\t{run_id}\n")
                for key, value in (("metric1", rng.uniform(0, 1)), ("metric2", abs(rng.gauss(5, 2.5)))):
                    rows["metrics"].write(f"{key}\t{value!r}\t{start}\t{run_id}\t0\tfalse\n")
                    rows["latest_metrics"].write(f"{key}\t{value!r}\t{start}\t0\tfalse\t{run_id}\n")
        probe.setdefault("parent_run_id", parent_id)
    probe["identifier"] = "id_7"
    with psycopg2.connect(PG + MLFLOW_DB) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,"
            " last_update_time) VALUES (1, 'search-bench', 'mlflow-artifacts:/1', 'active', %s, %s)",
            (now, now),
        )
        columns = {
            "runs": "(run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time,"
            " end_time, source_version, lifecycle_stage, artifact_uri, experiment_id)",
            "tags": '("key", value, run_uuid)',
            "params": '("key", value, run_uuid)',
            "metrics": '("key", value, timestamp, run_uuid, step, is_nan)',
            "latest_metrics": '("key", value, timestamp, step, is_nan, run_uuid)',
        }
        for table, buffer in rows.items():
            buffer.seek(0)
            cursor.copy_expert(f"COPY {table} {columns[table]} FROM STDIN", buffer)
    settle(MLFLOW_DB)
    assert probe == probe_of(seed)
    return probe


def count_rows(database: str, table: str) -> int | None:
    """Rows in `table` of `database`, or None if the database or table is missing."""
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atqc", f"SELECT count(*) FROM {table}", database],
        capture_output=True, text=True,
    )  # fmt: skip
    return int(out.stdout) if out.returncode == 0 and out.stdout.strip() else None


def settle(database: str) -> None:
    """VACUUM ANALYZE a freshly loaded store, as a bulk load is followed in production, so that
    autovacuum does not work through 100,000 new runs' tables during the measurements, on the
    same cores, and both stores start from the same state."""
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "VACUUM ANALYZE", database], check=True)


def import_into_runtree() -> float:
    recreate_database(RUNTREE_DB)
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/" + RUNTREE_DB}
    python = str(servers.BIN / "python")
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=servers.ROOT, env=env, check=True)
    started = time.perf_counter()
    subprocess.run(
        [python, "manage.py", "import_mlflow", PG + MLFLOW_DB, "--experiment", "search-bench"],
        cwd=servers.ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    settle(RUNTREE_DB)
    return seconds


def queries(probe: dict, page_size: int = 100) -> dict[str, dict]:
    return {
        "children of one parent (`tags.mlflow.parentRunId = …`)": {
            "filter": f"tags.mlflow.parentRunId = '{probe['parent_run_id']}'",
        },
        "tag + metric (`tags.test_identifier = 'id_7' and metrics.metric1 < 0.5`)": {
            "filter": f"tags.test_identifier = '{probe['identifier']}' and metrics.metric1 < 0.5",
        },
        f"`order_by metrics.metric1`, first page of {page_size}": {
            "order_by": ["metrics.metric1 ASC"],
            "max_results": page_size,
        },
        f"`order_by metrics.metric1`, tenth page of {page_size} (page_token)": {
            "order_by": ["metrics.metric1 ASC"],
            "max_results": page_size,
            "pages": 10,
        },
        f"`order_by params.param1 DESC`, first page of {page_size}": {
            "order_by": ["params.param1 DESC"],
            "max_results": page_size,
        },
        f"`order_by params.param1 DESC`, tenth page of {page_size} (page_token)": {
            "order_by": ["params.param1 DESC"],
            "max_results": page_size,
            "pages": 10,
        },
    }


def time_search(session, url: str, experiment_id: str, query: dict) -> tuple[float, int]:
    """ms of the query's last page (following page tokens to it), and the runs on that page."""
    body = {"experiment_ids": [experiment_id], "max_results": query.get("max_results", 1000)}
    for key in ("filter", "order_by"):
        if key in query:
            body[key] = query[key]
    token, elapsed, found = None, 0.0, 0
    for _ in range(query.get("pages", 1)):
        page = dict(body, page_token=token) if token else body
        started = time.perf_counter()
        response = session.post(f"{url}/api/2.0/mlflow/runs/search", json=page)
        elapsed = (time.perf_counter() - started) * 1000  # the last page's time
        response.raise_for_status()
        payload = response.json()
        token = payload.get("next_page_token")
        found = len(payload.get("runs", []))
    return elapsed, found


def main() -> None:
    import requests

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parents", type=int, default=1000)
    parser.add_argument("--children", type=int, default=100)
    # 15, not 7: a median of 7 swung by a fifth between runs on one store (the children filter at
    # 12.5 ms over 7 repeats, 10.5 over 20, ten minutes apart, 2026-12-05). Costs ~10 s a query.
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="search the stores an earlier run of these sizes built")
    parser.add_argument("--alone", action="store_true", help="Runtree only, no `mlflow server` taking turns with it")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds of idle before each timed request")
    args = parser.parse_args()
    if args.alone and args.write:
        parser.error("--alone times Runtree only; the section it would write compares two servers")
    global MLFLOW_DB, RUNTREE_DB
    if args.smoke:
        args.parents, args.children, args.repeats = 20, 10, 1
        MLFLOW_DB, RUNTREE_DB = MLFLOW_DB + SMOKE_SUFFIX, RUNTREE_DB + SMOKE_SUFFIX
        servers.skip_settling()

    import_seconds = None
    if args.reuse:
        total = args.parents * (args.children + 1)
        found = count_rows(MLFLOW_DB, "runs"), count_rows(RUNTREE_DB, "tracker_run")
        if found != (total, total):
            sys.exit(f"--reuse: expected {total:,} runs in {MLFLOW_DB} and {RUNTREE_DB}, found {found}; run without it")
        probe = probe_of()
        print(f"reusing {MLFLOW_DB} and {RUNTREE_DB} ({total:,} runs each)", flush=True)
    else:
        started = time.perf_counter()
        probe = build_mlflow_store(args.parents, args.children)
        print(f"built the MLflow store in {time.perf_counter() - started:.1f} s", flush=True)
        import_seconds = import_into_runtree()
        print(f"imported into Runtree in {import_seconds:.1f} s", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="runtree-bench-search-"))
    running = [servers.start_runtree(workdir, "postgres://postgres@127.0.0.1:5432/" + RUNTREE_DB)]
    if not (args.smoke or args.alone):
        running.append(servers.start_mlflow(workdir, PG_SQLALCHEMY + MLFLOW_DB))
    print(f"waited {servers.wait_until_quiet():.0f} s for the servers to settle", flush=True)
    try:
        session = requests.Session()
        results: dict[str, dict[str, list[float]]] = {}
        experiments = {
            server.name: session.get(
                f"{server.url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "search-bench"}
            ).json()["experiment"]["experiment_id"]
            for server in running
        }
        for label, query in queries(probe, 10 if args.smoke else 100).items():
            results[label] = {server.name: [] for server in running}
            # Paired: the servers take turns repeat by repeat, so a burst of load on the shared
            # machine lands on both rather than on whichever was being measured.
            for repeat in range(args.repeats + 1):
                for server in running:
                    time.sleep(args.gap)
                    elapsed, found = time_search(session, server.url, experiments[server.name], query)
                    if repeat:  # the first round warms caches on both servers
                        results[label][server.name].append(elapsed)
            for server in running:
                timings = results[label][server.name]
                print(f"{server.name:8s} {label}: {report.spread(timings)} ms, {found} runs", flush=True)
        text = render(args, results, import_seconds)
        print(text)
        if args.write:
            report.write_section("search", text)
    finally:
        for server in running:
            servers.stop(server)


def render(args, results, import_seconds) -> str:
    total = args.parents * (args.children + 1)
    lines = [
        "## Search",
        "",
        f"{report.today()} · {report.machine()} · PostgreSQL {report.postgres_version()} · {total:,} runs"
        f" ({args.parents:,} parents × {args.children} children), {args.repeats} repeats, one worker each,"
        " servers taking turns repeat by repeat, client-observed time of `runs/search` over loopback;"
        f" 1-minute load average {os.getloadavg()[0]:.1f} at the end (the machine is shared) · `bench/search.py`",
        "",
        "| query | Runtree ms (min / median / max) | mlflow server ms | mlflow ÷ Runtree (medians) |",
        "| --- | --- | --- | --- |",
    ]
    for label, by_server in results.items():
        ours = by_server["runtree"]
        theirs = by_server.get("mlflow")
        ratio = f"{statistics.median(theirs) / statistics.median(ours):.1f}×" if theirs else "—"
        lines.append(f"| {label} | {report.spread(ours)} | {report.spread(theirs) if theirs else '—'} | {ratio} |")
    if import_seconds is None:
        imported = "not timed in this run (`--reuse` searched stores an earlier run had built)."
    else:
        imported = f"{import_seconds:.1f} s for {total:,} runs."
    lines += ["", f"Importing the same store into Runtree (`import_mlflow`): {imported}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
