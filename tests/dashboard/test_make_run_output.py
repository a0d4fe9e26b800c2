"""`make run` (the embedded default: no broker, tasks in-process) prints no broker warnings."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_loads_without_kombus_no_hostname_warning(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("CELERY_BROKER_URL", "DATABASE_URL")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'runtree.sqlite3'}"
    for command in (["migrate", "--noinput", "-v0"], ["demo"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        assert "No hostname was supplied" not in done.stdout + done.stderr
    assert "Loaded demo experiments" in done.stdout
