"""Shared bits of the benchmarks: statistics, the machine, and writing docs/benchmarks.md."""

import datetime
import os
import platform
import re
import statistics
import subprocess
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def spread(values: list[float]) -> str:
    """min / median / max, the form every figure in docs/benchmarks.md takes."""
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def machine() -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB RAM, Python {platform.python_version()}"


def postgres_version() -> str:
    try:
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "show server_version"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def create_database(name: str, *, fresh: bool) -> None:
    """The benchmark's PostgreSQL database, kept between runs (its data is built once) unless
    `fresh` asks for an empty one (the smoke sizes)."""
    if fresh:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", name], check=True)
    result = subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], capture_output=True, text=True)
    if result.returncode and "already exists" not in result.stderr:
        raise SystemExit(f"createdb {name} failed: {result.stderr.strip()}")


def timings(client, url: str, repeats: int) -> tuple[list[float], bytes]:
    """Milliseconds of each of `repeats` requests of `url` through Django's test Client (the
    whole request, no network), and the last response's body; each must answer 200."""
    elapsed = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        elapsed.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return elapsed, response.content


def today() -> str:
    return datetime.date.today().isoformat()


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section between `<!-- bench:NAME -->` markers in docs/benchmarks.md."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nRun with `make bench`. Figures are min / median / max over repeats.\n"
    )
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
