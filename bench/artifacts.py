"""Artifact benchmark: one large file up and down through the mlflow client, against Runtree and
against `mlflow server --serve-artifacts`, each storing on the local disk.

Per server and transfer: MB/s (the client's wall time: `mlflow.log_artifact`, then
`mlflow.artifacts.download_artifacts` of the same file) and the server's peak memory growth
while the transfer ran (the resident memory of all of its processes, sampled every 20 ms, minus
what they held just before). Uploads and downloads stream in Runtree, so its growth must stay
under 64 MiB for a 1 GiB file. Every byte that comes back is compared with what was sent.

Both servers run one worker process and get a fresh store in a temporary folder, deleted at the
end with the test file.

    .venv/bin/python bench/artifacts.py               # 1 GiB, 3 rounds
    .venv/bin/python bench/artifacts.py --smoke       # 20 MiB, 1 round (make bench-smoke)
    .venv/bin/python bench/artifacts.py --write       # also update docs/benchmarks.md
"""

import argparse
import contextlib
import filecmp
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.servers import APPLICATION, BIN, GRANIAN_OPTIONS, ROOT, Server, _start, free_port, stop  # noqa: E402

MIB = 1024 * 1024
RSS_LIMIT_MIB = 64


def start_runtree(workdir: Path) -> Server:
    """Runtree as served in production (granian, one worker), artifacts in a local folder. No
    Celery broker: artifacts never queue a task."""
    port = free_port()
    env = {
        "DATABASE_URL": f"sqlite:///{workdir / 'runtree.sqlite3'}",
        "RUNTREE_ARTIFACT_ROOT": str(workdir / "runtree-artifacts"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CELERY_BROKER_URL": "",
    }
    import subprocess  # noqa: PLC0415 (only here: the migration before the server starts)

    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **env}, check=True
    )
    command = [str(BIN / "granian"), *GRANIAN_OPTIONS, "--host", "127.0.0.1", "--port", str(port), APPLICATION]
    return _start("runtree-artifacts", command, port, env, cwd=ROOT)


def start_mlflow(workdir: Path) -> Server:
    """`mlflow server --serve-artifacts` with a local artifact destination: what runs get as
    `mlflow-artifacts:` URIs, proxied through the server like Runtree's."""
    port = free_port()
    command = [
        str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--serve-artifacts", "--artifacts-destination", str(workdir / "mlflow-artifacts"),
    ]  # fmt: skip
    return _start("mlflow-artifacts", command, port, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, cwd=workdir)


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of every process in the server's process group (its workers too)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if os.getpgid(int(entry)) != pgid:
                continue
            with open(f"/proc/{entry}/statm") as statm:
                total += int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return total


class PeakMemory:
    """The highest group RSS seen while the block runs, sampled on a thread."""

    def __init__(self, pgid: int):
        self.pgid, self.peak, self._done = pgid, 0, threading.Event()

    def __enter__(self):
        self.before = group_rss_bytes(self.pgid)
        self.peak = self.before
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.is_set():
            self.peak = max(self.peak, group_rss_bytes(self.pgid))
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, group_rss_bytes(self.pgid))

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.before) / MIB


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)  # random, so nothing on the way can compress it
    with open(path, "wb") as file:
        for _ in range(size // MIB):
            file.write(block)


def transfer(server: Server, source: Path, scratch: Path) -> dict[str, float]:
    # mlflow is a development requirement (requirements-dev.txt): imported when used.
    import mlflow  # noqa: PLC0415

    mlflow.set_tracking_uri(server.url)
    size_mb = source.stat().st_size / 1e6
    with mlflow.start_run() as run:
        with PeakMemory(server.process.pid) as upload_memory:
            started = time.perf_counter()
            mlflow.log_artifact(str(source))
            upload_seconds = time.perf_counter() - started
    target = scratch / f"download-{run.info.run_id}"
    with PeakMemory(server.process.pid) as download_memory:
        started = time.perf_counter()
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{run.info.artifact_uri}/{source.name}", dst_path=str(target)
        )
        download_seconds = time.perf_counter() - started
    if not filecmp.cmp(source, local, shallow=False):
        raise SystemExit(f"{server.name}: the downloaded file differs from the uploaded one")
    shutil.rmtree(target)
    return {
        "up_mbs": size_mb / upload_seconds,
        "up_rss": upload_memory.growth_mib,
        "down_mbs": size_mb / download_seconds,
        "down_rss": download_memory.growth_mib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="20 MiB, one round: checks the benchmark runs")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if args.smoke:
        args.mib, args.rounds = 20, 1
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "600")

    workdir = Path(tempfile.mkdtemp(prefix="bench-artifacts-", dir="/tmp"))
    results: dict[str, list[dict[str, float]]] = {"Runtree": [], "mlflow server --serve-artifacts": []}
    try:
        source = workdir / "model.bin"
        make_file(source, args.mib * MIB)
        servers = {"Runtree": start_runtree(workdir), "mlflow server --serve-artifacts": start_mlflow(workdir)}
        try:
            time.sleep(3 if args.smoke else 20)  # mlflow's job runner imports itself after the port answers
            # A first small transfer loads each server's code for these requests (Runtree: ~30 MiB
            # of imports on its first artifact request), so the rounds measure the transfers.
            warm_up = workdir / "warm-up.bin"
            make_file(warm_up, MIB)
            for server in servers.values():
                transfer(server, warm_up, workdir)
            for round_number in range(args.rounds):
                for name, server in servers.items():  # taking turns, so drift hits both
                    figures = transfer(server, source, workdir)
                    results[name].append(figures)
                    print(
                        f"round {round_number + 1} {name}: up {figures['up_mbs']:.0f} MB/s "
                        f"(+{figures['up_rss']:.1f} MiB), down {figures['down_mbs']:.0f} MB/s "
                        f"(+{figures['down_rss']:.1f} MiB)",
                        flush=True,
                    )
        finally:
            for server in servers.values():
                stop(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    worst = max(max(r["up_rss"], r["down_rss"]) for r in results["Runtree"])
    table = ["| server | upload MB/s | upload peak RSS growth, MiB | download MB/s | download peak RSS growth, MiB |"]
    table.append("|---|---:|---:|---:|---:|")
    for name, rounds in results.items():
        columns = [report.spread([r[key] for r in rounds]) for key in ("up_mbs", "up_rss", "down_mbs", "down_rss")]
        table.append(f"| {name} | " + " | ".join(columns) + " |")
    print("\n".join(table))
    verdict = "within" if worst < RSS_LIMIT_MIB else "OVER"
    print(f"Runtree's worst peak growth: {worst:.1f} MiB ({verdict} the {RSS_LIMIT_MIB} MiB target)")
    if args.write:
        report.write_section(
            "artifacts",
            f"""## Artifacts: a {args.mib:,} MiB file up and down

One file of {args.mib:,} MiB (random bytes) logged with `mlflow.log_artifact` and fetched back with
`mlflow.artifacts.download_artifacts` by the mlflow {_mlflow_version()} client, against Runtree
(granian, one worker, artifacts in a local folder) and `mlflow server --serve-artifacts` (one
worker, a local artifact destination), taking turns for {args.rounds} rounds after a 1 MiB warm-up
transfer each; every download is compared byte for byte with the file sent. Peak RSS growth:
the most resident memory all of the server's processes held during the transfer, minus what
they held just before (sampled every 20 ms). On {report.today()}, {report.machine()}; the
cores were shared with other work.

{chr(10).join(table)}

Runtree's worst peak growth: {worst:.1f} MiB (target: under {RSS_LIMIT_MIB} MiB). An upload is copied
in 1 MiB pieces into a temporary file beside the store and moved into place when complete; a
download is a file response sent in 1 MiB pieces. The first artifact request of a fresh Runtree
process also loads about 30 MiB of code (the warm-up takes that out of the rounds). Both stores
write into the page cache, so upload rates swing with what else the shared machine is doing.

Reproduce: `.venv/bin/python bench/artifacts.py --write`""",
        )
    if worst >= RSS_LIMIT_MIB:
        raise SystemExit(f"Runtree's peak memory growth {worst:.1f} MiB is over the {RSS_LIMIT_MIB} MiB target")


def _mlflow_version() -> str:
    import mlflow  # noqa: PLC0415

    return mlflow.__version__


if __name__ == "__main__":
    main()
