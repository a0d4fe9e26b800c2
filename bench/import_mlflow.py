"""Import benchmark: an MLflow SQLite store with N runs, imported into Runtree on PostgreSQL.

The store is made by mlflow itself (an empty SqlAlchemyStore: mlflow's real schema, migrations
applied) and then filled by inserting rows straight into its tables: logging 100,000 runs through
the client would take far longer than the import being measured. Each tree is a root with 9
children and 90 grandchildren; each run has 5 params, 5-6 tags and 2 metrics x 10 steps (some
NaN); 2% of runs are deleted. Rows go in shuffled, so children often come before their parents.

Measured, one after another on a fresh database `runtree_bench_import`: reading the source alone,
the import, the same import again (nothing new), and `refresh_summaries` afterwards. The import's
after-commit summary refresh (eager without a broker) is held back during the import and measured
as that last step instead.

    .venv/bin/python bench/import_mlflow.py                # 100,000 runs
    .venv/bin/python bench/import_mlflow.py --runs 2000    # quick
    .venv/bin/python bench/import_mlflow.py --write        # also update docs/benchmarks.md
    .venv/bin/python bench/import_mlflow.py --smoke        # seconds, for CI: proves the bench still runs
"""

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402

DATABASE = "runtree_bench_import"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
RUNS_PER_TREE = 100  # a root, 9 children, 90 grandchildren
RUNS_PER_EXPERIMENT = 20_000
STEPS = 10
PARAMS = ("lr", "batch_size", "optimizer", "seed", "dropout")


def build_store(path: Path, runs: int, seed: int) -> dict[str, int]:
    """Write an MLflow store of `runs` runs at `path`; return its row counts."""
    import sqlalchemy
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{path}", str(path.parent / "artifacts"))
    tables = sqlalchemy.MetaData()
    tables.reflect(bind=store.engine, only=["experiments", "runs", "params", "tags", "metrics", "latest_metrics"])
    rng = random.Random(seed)
    rows: dict[str, list[dict]] = {name: [] for name in tables.tables}
    trees = runs // RUNS_PER_TREE
    experiments = max(1, runs // RUNS_PER_EXPERIMENT)
    for number in range(1, experiments + 1):
        rows["experiments"].append(
            {
                "experiment_id": number,
                "name": f"sweep-{number}",
                "artifact_location": f"/artifacts/{number}",
                "lifecycle_stage": "active",
                "creation_time": 1_700_000_000_000,
                "last_update_time": 1_700_000_000_000,
            }
        )
    clock = 1_700_000_000_000
    for tree in range(trees):
        experiment_id = tree % experiments + 1
        root = _run(rows, rng, experiment_id, f"tree-{tree}", None, clock)
        for c in range(9):
            child = _run(rows, rng, experiment_id, f"tree-{tree}-{c}", root, clock + 1000)
            for g in range(10):
                _run(rows, rng, experiment_id, f"tree-{tree}-{c}-{g}", child, clock + 2000)
        clock += 60_000
    with store.engine.begin() as connection:
        for name in ("experiments", "runs", "params", "tags", "metrics", "latest_metrics"):
            table_rows = rows[name]
            if name != "experiments":
                rng.shuffle(table_rows)
            for start in range(0, len(table_rows), 20_000):
                connection.execute(tables.tables[name].insert(), table_rows[start : start + 20_000])
    store.engine.dispose()
    return {name: len(table_rows) for name, table_rows in rows.items()}


def _run(rows, rng, experiment_id: int, name: str, parent: str | None, start: int) -> str:
    run_id = uuid.UUID(int=rng.getrandbits(128)).hex
    deleted = rng.random() < 0.02
    rows["runs"].append(
        {
            "run_uuid": run_id,
            "name": name,
            "source_type": "LOCAL",
            "source_name": "train.py",
            "entry_point_name": "",
            "user_id": "bench",
            "status": "FINISHED",
            "start_time": start,
            "end_time": start + 30_000,
            "deleted_time": start + 90_000 if deleted else None,
            "source_version": "",
            "lifecycle_stage": "deleted" if deleted else "active",
            "artifact_uri": f"/artifacts/{experiment_id}/{run_id}/artifacts",
            "experiment_id": experiment_id,
        }
    )
    values = {
        "lr": f"{rng.choice([0.1, 0.01, 0.001])}",
        "batch_size": str(rng.choice([32, 64, 128])),
        "optimizer": rng.choice(["adam", "sgd"]),
        "seed": str(rng.randint(0, 999)),
        "dropout": f"{rng.random():.2f}",
    }
    rows["params"].extend({"run_uuid": run_id, "key": key, "value": values[key]} for key in PARAMS)
    tags = {
        "mlflow.runName": name,
        "mlflow.user": "bench",
        "mlflow.source.name": "train.py",
        "mlflow.source.type": "LOCAL",
        "stage": rng.choice(["a", "b"]),
    }
    if parent:
        tags["mlflow.parentRunId"] = parent
    rows["tags"].extend({"run_uuid": run_id, "key": key, "value": value} for key, value in tags.items())
    loss, acc = rng.uniform(1, 2), rng.uniform(0.3, 0.5)
    for step in range(STEPS):
        loss, acc = loss * rng.uniform(0.8, 1.0), min(1.0, acc * rng.uniform(1.0, 1.1))
        is_nan = rng.random() < 0.01
        for key, value, nan in (("loss", loss, is_nan), ("acc", acc, False)):
            point = {
                "run_uuid": run_id,
                "key": key,
                "value": 0.0 if nan else value,
                "timestamp": start + step * 1000,
                "step": step,
                "is_nan": nan,
            }
            rows["metrics"].append(point)
            if step == STEPS - 1:
                rows["latest_metrics"].append(dict(point))
    return run_id


def fresh_database(name: str) -> None:
    import psycopg2

    connection = psycopg2.connect(f"{POSTGRES}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        cursor.execute(f"CREATE DATABASE {name}")
    connection.close()


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000, help="a multiple of 100")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "runtree-bench-import")
    parser.add_argument("--write", action="store_true", help="write the results to docs/benchmarks.md")
    parser.add_argument("--smoke", action="store_true", help="200 runs, its own database: proves the bench still runs")
    args = parser.parse_args()
    database = DATABASE + "_smoke" if args.smoke else DATABASE
    if args.smoke:
        args.runs, args.write = 200, False

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    args.workdir.mkdir(parents=True, exist_ok=True)
    store = args.workdir / f"mlflow-{args.runs}-{args.seed}.db"
    if not store.exists():  # built once per size and seed: the build is not what is measured
        build_seconds, counts = timed(lambda: build_store(store, args.runs, args.seed))
        print(f"built {store} in {build_seconds:.0f} s: {counts}", flush=True)
    source = f"sqlite:///{store}"

    fresh_database(database)
    os.environ["DATABASE_URL"] = f"{POSTGRES}/{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from tracker import importing, tasks
    from tracker.models import Metric, Run

    call_command("migrate", verbosity=0)
    # Held back during the import, measured afterwards as refresh_summaries (see the docstring).
    tasks.queue_refresh_after_commit = lambda root_pks: None

    def read_only() -> int:
        with importing.open_source(source) as mlflow_source:
            return sum(len(chunk) for e in mlflow_source.experiments() for chunk in mlflow_source.runs(e))

    load_before = os.getloadavg()[0]
    read_seconds, read_runs = timed(read_only)
    print(f"read {read_runs} runs in {read_seconds:.1f} s", flush=True)
    import_seconds, _ = timed(lambda: call_command("import_mlflow", source, verbosity=1))
    runs, points = Run.objects.count(), Metric.objects.count()
    assert runs == args.runs and points == args.runs * STEPS * 2, (runs, points)
    assert not Run.objects.filter(path="").exists()
    print(f"imported {runs} runs, {points} metric points in {import_seconds:.1f} s", flush=True)
    again_seconds, _ = timed(lambda: call_command("import_mlflow", source, verbosity=0))
    assert (Run.objects.count(), Metric.objects.count()) == (runs, points)
    print(f"imported again in {again_seconds:.1f} s", flush=True)
    parents = Run.objects.filter(children__isnull=False).distinct().count()
    summaries_seconds, _ = timed(lambda: call_command("refresh_summaries", verbosity=0))
    print(f"refresh_summaries ({parents} parents) in {summaries_seconds:.1f} s", flush=True)

    load = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    text = _render(args.runs, points, parents, read_seconds, import_seconds, again_seconds, summaries_seconds, load)
    print(text)
    if args.write:
        report.write_section("import", text)


def _render(runs, points, parents, read_s, import_s, again_s, summaries_s, load: str) -> str:
    import mlflow

    experiments = max(1, runs // RUNS_PER_EXPERIMENT)
    in_experiments = f"{experiments} experiment{'s' if experiments > 1 else ''}"
    return f"""
## Import from MLflow (`manage.py import_mlflow`)

{runs:,} runs in {in_experiments} (trees of a root, 9 children and 90 grandchildren; 5 params,
5-6 tags and 2 metrics x {STEPS} steps per run: {points:,} metric points; 2% deleted; rows
shuffled so children often precede their parents), from an MLflow {mlflow.__version__} SQLite store
read with SQLAlchemy, into Runtree on PostgreSQL {report.postgres_version()} (`{DATABASE}`).
One run of each step, on {report.today()}, {report.machine()}; the cores were shared with other
work (1-minute load average {load}).

| step | seconds | rate |
|---|---:|---:|
| read the source alone | {read_s:.1f} | {runs / read_s:,.0f} runs/s |
| import | {import_s:.1f} | {runs / import_s:,.0f} runs/s, {points / import_s:,.0f} points/s |
| import again, nothing new | {again_s:.1f} | {runs / again_s:,.0f} runs/s |
| `refresh_summaries` afterwards ({parents:,} parents) | {summaries_s:.1f} | {parents / summaries_s:,.0f} parents/s |

The import writes each experiment in one transaction: bulk inserts of 2,000 rows, then one pass
that links the experiment's trees (paths, depths, mlflow.rootRunId). Without a Celery broker the
summaries refresh eagerly after each experiment's commit, so a plain `import_mlflow` takes about
the first and last rows together; with a broker the workers take the last row.

Reproduce: `.venv/bin/python bench/import_mlflow.py --runs {runs} --write`
"""


if __name__ == "__main__":
    main()
