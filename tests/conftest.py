import os
from pathlib import Path

import pytest

# Debian's Chromium, never a browser a test tool downloads.
CHROMIUM = os.environ.get("RUNTREE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def experiment(db):
    from tests.factories import ExperimentFactory

    return ExperimentFactory()


@pytest.fixture
def default_experiment(db):
    """Experiment 0, as the data migration makes it. Live-server tests flush the database
    afterwards, migration data included, so each test puts it back for itself."""
    from tracker.models import Experiment

    experiment, _ = Experiment.objects.get_or_create(
        pk=0,
        defaults={
            "name": "Default",
            "artifact_location": "mlflow-artifacts:/0",
            "creation_time": 0,
            "last_update_time": 0,
        },
    )
    return experiment


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test in the run (Playwright's sync API allows one
    driver per thread). Fails, never skips, without Chromium: a skipped browser test looks green
    while nothing was checked."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Browser tests need Chromium at {CHROMIUM} (apt-get install chromium)", pytrace=False)
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
    # thread with a running loop unless told that this is deliberate.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def eager_celery():
    """Tasks run in-process, as with no broker configured, whatever the environment says."""
    from config.celery_app import app as celery_app

    saved = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = saved


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a write as its own request would: commit, then the on-commit callbacks (the
    summary refresh among them)."""

    def run(write, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return write(*args, **kwargs)

    return run


@pytest.fixture(autouse=True)
def no_in_process_repair_midtest():
    """The embedded default repairs stale trees after a write at most every 30 s of the process's
    life (tracker.tasks.maybe_repair_in_process): start each test's clock afresh, so a test's
    query count never depends on how long the session has run."""
    import time

    from tracker import tasks

    tasks._last_in_process_repair[0] = time.monotonic()
