"""Ingest benchmark: the seed-shaped sweep through the real `mlflow` client, side by side.

Each child: create, 2 params, 2 metrics, 1 tag, end (7 blocking calls); each parent logs its
best child afterwards, as the seed notebook's challenge does. Servers are measured in the same
run, each with its own fresh SQLite store (or PostgreSQL with --postgres) and one worker. The
floor is the same client against a do-nothing server: the client's own cost.

The machine's speed drifts by a third over minutes (a shared 2-core VM), more than the servers'
own costs, so the servers take turns in short rounds (one parent of 25 children each) and a
server's own cost is the median over rounds of its time minus the floor's in the same round.
Each server has its own client process for the whole run, warmed up before the first round.

    .venv/bin/python bench/ingest.py                 # 20 rounds of 1 parent x 25 children
    .venv/bin/python bench/ingest.py --smoke         # tiny, for CI: proves the bench still runs
    .venv/bin/python bench/ingest.py --write         # also update docs/benchmarks.md
"""

import argparse
import math
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, servers  # noqa: E402


def sweep(tracking_uri: str, experiment: str, parents: int, children: int, seed: int, ready=None) -> float:
    """Log one sweep and return the seconds it took (the client's wall-clock time).

    A one-child warm-up first pays the client's lazy imports and opens its connection, so
    the timed part is the steady state. `ready`, a barrier, lines up concurrent writers."""
    import mlflow

    rng = random.Random(seed)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    _log_sweep(mlflow, rng, 1, 1, prefix="warmup")
    if ready is not None:
        ready.wait()
    started = time.perf_counter()
    _log_sweep(mlflow, rng, parents, children, prefix="parent")
    return time.perf_counter() - started


def _log_sweep(mlflow, rng, parents: int, children: int, prefix: str) -> None:
    for p in range(parents):
        with mlflow.start_run(run_name=f"{prefix}_{p}"):
            mlflow.set_tag("test_identifier", "bench")
            best = (math.inf, "", "")
            for c in range(children):
                with mlflow.start_run(run_name=f"run_{c}_test_{p}", nested=True):
                    param1, param2 = rng.choice("abc"), rng.choice("def")
                    metric1 = rng.uniform(0, 1)
                    mlflow.log_param("param1", param1)
                    mlflow.log_param("param2", param2)
                    mlflow.log_metric("metric1", metric1)
                    mlflow.log_metric("metric2", abs(rng.gauss(5, 2.5)))
                    mlflow.set_tag("test_identifier", "bench")
                best = min(best, (metric1, param1, param2))
            mlflow.log_metric("best_metric1", best[0])
            mlflow.log_param("best_param1", best[1])
            mlflow.log_param("best_param2", best[2])


def _round_in_client(url: str, experiment: str, parents: int, children: int, seed: int) -> float:
    import mlflow

    mlflow.set_tracking_uri(url)
    if mlflow.get_experiment_by_name(experiment) is None:  # warm-up: the client's imports and connection
        mlflow.set_experiment(experiment)
        _log_sweep(mlflow, random.Random(seed), 1, 1, prefix="warmup")
    mlflow.set_experiment(experiment)
    started = time.perf_counter()
    _log_sweep(mlflow, random.Random(seed), parents, children, prefix=f"round{seed}_parent")
    return time.perf_counter() - started


def rounds(
    urls: dict[str, str], rounds: int, parents: int, children: int, *, before_rounds=None
) -> dict[str, list[float]]:
    """ms per child of each server in each round; in round r, the servers take turns starting
    from the r-th, each through its own long-lived client process. `before_rounds` is called once
    the servers are warm and settled, just before the first round."""
    context = multiprocessing.get_context("spawn")
    clients = {name: context.Pool(1) for name in urls}
    try:
        experiment = f"sweep-{time.time_ns()}"
        for name, url in urls.items():
            clients[name].apply(_round_in_client, (url, experiment, 1, 1, -1))
        print(f"waited {servers.wait_until_quiet():.0f} s for the servers to settle", flush=True)
        if before_rounds is not None:
            before_rounds()
        per_child: dict[str, list[float]] = {name: [] for name in urls}
        names = list(urls)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                seconds = clients[name].apply(_round_in_client, (urls[name], experiment, parents, children, r))
                per_child[name].append(seconds * 1000 / (parents * children))
            print(f"round {r}: " + "  ".join(f"{n} {v[-1]:.1f}" for n, v in per_child.items()), flush=True)
        return per_child
    finally:
        for pool in clients.values():
            pool.close()
            pool.join()


def own_costs(per_child: dict[str, list[float]]) -> dict[str, list[float]]:
    """Each server's ms per child minus the floor's in the same round."""
    floor = per_child["floor"]
    return {
        name: [value - floor_value for value, floor_value in zip(values, floor, strict=True)]
        for name, values in per_child.items()
        if name != "floor"
    }


def _writer(url, experiment, parents, children, seed, ready, results) -> None:
    try:
        results.put(("ok", sweep(url, experiment, parents, children, seed, ready)))
    except Exception as exc:  # reported and counted by the parent: the target is zero
        results.put(("error", repr(exc)))


def concurrent_writers(url: str, writers: int, parents: int, children: int) -> tuple[float, int]:
    """`writers` processes log sweeps into one experiment at once; returns (children/s, errors).
    Afterwards every run, param, metric and tag is counted through the API."""
    experiment = f"concurrent-{time.time_ns()}"
    # Made before the writers start: the mlflow client's set_experiment, losing a race to create
    # the same name, returns without making it active, and that writer's runs go to "Default".
    from mlflow import MlflowClient

    MlflowClient(url).create_experiment(experiment)
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(writers), ctx.Queue()
    processes = [
        ctx.Process(target=_writer, args=(url, experiment, parents, children, i, ready, results))
        for i in range(writers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    errors = [detail for kind, detail in outcomes if kind == "error"]
    for detail in errors:
        print(f"writer failed: {detail}", file=sys.stderr)
    elapsed = max((detail for kind, detail in outcomes if kind == "ok"), default=math.inf)
    missing = _count_missing(url, experiment, writers, parents, children)
    if missing:
        print(f"lost rows: {missing}", file=sys.stderr)
    return writers * parents * children / elapsed, len(errors) + sum(missing.values())


def _count_missing(url: str, experiment: str, writers: int, parents: int, children: int) -> dict[str, int]:
    """What the writers logged minus what the server holds (warm-up runs included)."""
    from mlflow import MlflowClient

    client = MlflowClient(url)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], max_results=50000)
    per_writer_parents, per_writer_children = parents + 1, parents * children + 1
    expected = {
        "runs": writers * (per_writer_parents + per_writer_children),
        "params": writers * (2 * per_writer_children + 2 * per_writer_parents),
        "metrics": writers * (2 * per_writer_children + per_writer_parents),
        "test_identifier tags": writers * (per_writer_children + per_writer_parents),
    }
    found = {
        "runs": len(runs),
        "params": sum(len(run.data.params) for run in runs),
        "metrics": sum(len(run.data.metrics) for run in runs),
        "test_identifier tags": sum("test_identifier" in run.data.tags for run in runs),
    }
    return {key: expected[key] - found[key] for key in expected if expected[key] != found[key]}


def log_batch_ms(url: str, repeats: int) -> list[float]:
    """Client-observed time of one log-batch call with 1,000 metrics (an upper bound on server time)."""
    import requests

    api = url + "/api/2.0/mlflow"
    session = requests.Session()
    experiment_id = session.post(f"{api}/experiments/create", json={"name": f"batch-{time.time_ns()}"}).json()[
        "experiment_id"
    ]
    timings = []
    for r in range(repeats + 1):
        run_id = session.post(f"{api}/runs/create", json={"experiment_id": experiment_id}).json()["run"]["info"][
            "run_id"
        ]
        metrics = [
            {"key": f"m{i % 50}", "value": i * 0.5, "timestamp": 1_700_000_000_000 + i, "step": i} for i in range(1000)
        ]
        started = time.perf_counter()
        response = session.post(f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": metrics})
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        if r:  # the first call warms connections and caches
            timings.append(elapsed)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--parents", type=int, default=1, help="parents per round")
    parser.add_argument("--children", type=int, default=25, help="children per parent")
    parser.add_argument("--smoke", action="store_true", help="2 rounds of 1 x 3, Runtree and the floor only")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL stores instead of SQLite")
    parser.add_argument("--write", action="store_true", help="write the results to docs/benchmarks.md")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.parents, args.children = 2, 1, 3
        servers.skip_settling()

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no "View run at" line per run
    workdir = Path(tempfile.mkdtemp(prefix="runtree-bench-"))
    started = []
    try:
        pg = _postgres_urls() if args.postgres else {}
        started.append(servers.start_floor())
        # SQLite: the embedded default as `make run` serves it (a worker on the folder broker);
        # PostgreSQL: production's shape (a worker on Redis).
        broker = "redis" if args.postgres else "folder"
        started.append(servers.start_runtree(workdir, pg.get("runtree"), broker=broker))
        if not args.smoke:
            started.append(servers.start_mlflow(workdir, pg.get("mlflow")))
            fml = servers.start_fasttrackml(workdir, pg.get("fasttrackml"))
            if fml:
                started.append(fml)
        per_child = rounds({s.name: s.url for s in started}, args.rounds, args.parents, args.children)
        runtree = next(s for s in started if s.name == "runtree")
        batch = log_batch_ms(runtree.url, 3 if args.smoke else 20)
        throughput, errors = concurrent_writers(runtree.url, 2 if args.smoke else 8, 1, 3 if args.smoke else 25)
        if errors:
            raise SystemExit(f"{errors} concurrent writers failed")
        text = _render(args, per_child, batch, throughput, errors)
        print(text)
        if args.write:
            report.write_section("ingest-postgres" if args.postgres else "ingest", text)
    finally:
        for server in started:
            servers.stop(server)


def _postgres_urls() -> dict[str, str]:
    import subprocess

    urls = {}
    for name in ("runtree", "mlflow", "fasttrackml"):
        db = f"bench_ingest_{name}"
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", db], check=True)
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)
        urls[name] = f"postgresql://postgres@127.0.0.1:5432/{db}"
    # SQLAlchemy 2.1 reads plain postgresql:// as psycopg 3; MLflow's store here runs on psycopg2.
    urls["mlflow"] = urls["mlflow"].replace("postgresql://", "postgresql+psycopg2://")
    # FastTrackML's Go driver wants postgres://, and so does Runtree's dj-database-url default.
    urls["runtree"] = urls["runtree"].replace("postgresql://", "postgres://")
    urls["fasttrackml"] = urls["fasttrackml"].replace("postgresql://", "postgres://")
    return urls


def _render(args, per_child, batch, throughput, errors) -> str:
    own = own_costs(per_child)
    median_own = {name: statistics.median(values) for name, values in own.items()}
    backend = "PostgreSQL" if args.postgres else "SQLite"
    lines = [
        f"## Ingest ({backend})",
        "",
        f"{report.today()} · {report.machine()} · {args.rounds} rounds of {args.parents} parent ×"
        f" {args.children} children per server, taking turns; one server worker each, {backend} stores;"
        + (
            " Runtree with a Celery worker on Redis"
            if args.postgres
            else " Runtree as `make run` serves it (the embedded default: a Celery worker on a folder broker)"
        )
        + f"; 1-minute load average {os.getloadavg()[0]:.1f} at the end (2 cores, shared) · `bench/ingest.py`",
        "",
        "| server | ms per child (min / median / max) | own cost: − floor, same round (min / median / max) |"
        " Runtree's own cost ÷ this |",
        "| --- | --- | --- | --- |",
    ]
    for name, values in per_child.items():
        own_cost = "—" if name == "floor" else f"{report.spread(own[name])} ms"
        ratio = "—" if name in ("floor", "runtree") else f"1/{median_own[name] / max(median_own['runtree'], 0.01):.1f}"
        lines.append(f"| {name} | {report.spread(values)} | {own_cost} | {ratio} |")
    lines += [
        "",
        f"- `log-batch` of 1,000 metrics, client-observed (an upper bound on server time): {report.spread(batch)} ms",
        f"- {2 if args.smoke else 8} concurrent writers into one experiment: {throughput:.0f} children/s,"
        f" {errors} errors or lost rows (every run, param, metric and tag counted afterwards)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
