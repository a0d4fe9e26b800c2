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
    from playwright.sync_api import expect, sync_playwright

    # An expect() waits as long as a page action does (the contexts' 10 s), not Playwright's 5 s:
    # each test's fresh context parses plotly.js (4.8 MB) anew, which can take longer than 5 s
    # while other xdist workers share the CPU.
    expect.set_options(timeout=10_000)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Browser tests need Chromium at {CHROMIUM} (apt-get install chromium)", pytrace=False)
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
    # thread with a running loop unless told that this is deliberate.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing():
    """Django's own advice for test suites: production's PBKDF2 costs ~0.35 s a password made or
    checked here, paid by every user a test makes and every login. The tests check who may do
    what, not the hash's strength. Servers started as other processes keep production's hashers,
    and no test hands them a user made here."""
    from django.test.utils import override_settings  # noqa: PLC0415

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True, scope="session")
def postgresql_flushed_by_delete():
    """After each test that commits (live server, browser, worker), Django empties every table. On
    PostgreSQL it does so with one TRUNCATE of all 37 tables, which replaces each table's and
    index's files: ~0.15 s, against ~0.015 s for a DELETE of each table, for the few rows a test
    leaves. Several hundred tests flush, so the PostgreSQL suite deletes instead. The flush runs
    in one transaction, and Django's foreign keys are checked at its commit, so the order of the
    tables does not matter; no table has a trigger a DELETE would fire."""
    from django.db.backends.postgresql.operations import DatabaseOperations  # noqa: PLC0415

    truncate = DatabaseOperations.sql_flush

    def delete_each(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences:
            return truncate(self, style, tables, reset_sequences=True, allow_cascade=allow_cascade)
        return [f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};" for table in tables]

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(DatabaseOperations, "sql_flush", delete_each)
        yield


@pytest.fixture(autouse=True, scope="session")
def model_requirements_inferred_once_per_flavor():
    """`log_model` without `pip_requirements` has the mlflow client infer them: it starts a Python
    process that loads the model and lists what it imported (~5 s), all on the client's side, and
    for a flavor the answer is the same all session (the installed packages do not change). So the
    first model of each flavor pays for the real inference and later ones get its answer; what the
    client uploads to Runtree is unchanged."""
    import mlflow.models  # noqa: PLC0415 (only the model-logging tests reach it)

    infer = mlflow.models.infer_pip_requirements
    answers: dict[str, list[str]] = {}

    def infer_once(model_uri, flavor, *args, **kwargs):
        if flavor not in answers:
            answers[flavor] = infer(model_uri, flavor, *args, **kwargs)
        return list(answers[flavor])

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(mlflow.models, "infer_pip_requirements", infer_once)
        yield


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


@pytest.fixture(autouse=True)
def artifact_root(settings, tmp_path_factory):
    """Every test stores artifacts in a folder of its own, never in the project's artifacts/."""
    root = tmp_path_factory.mktemp("artifacts")
    settings.RUNTREE_ARTIFACT_ROOT = str(root)
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "allow_overwrite": True},
        },
    }
    return root


@pytest.fixture(scope="session")
def moto_server():
    """moto's standalone S3-compatible server on 127.0.0.1 (a free port), for the artifact tests
    on object storage. Fails, never skips, without moto: requirements-dev.txt pins it."""
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 (only the S3 tests need moto)
    except ImportError as error:
        pytest.fail(f"The S3 artifact tests need moto[server] (requirements-dev.txt): {error}", pytrace=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_artifact_bucket(settings, moto_server, request):
    """Artifacts on S3 (a fresh bucket on the moto server) for this test; the bucket is returned
    (a boto3 Bucket) so the test can see what was stored."""
    import boto3  # noqa: PLC0415 (only the S3 tests need boto3)

    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    name = "runtree-" + str(abs(hash(request.node.nodeid)))[:12]
    bucket = boto3.resource("s3", endpoint_url=moto_server, **credentials).create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": moto_server,
                "access_key": credentials["aws_access_key_id"],
                "secret_key": credentials["aws_secret_access_key"],
                "region_name": credentials["region_name"],
                "addressing_style": "path",
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": False,
                "max_memory_size": 8 * 1024 * 1024,
            },
        },
    }
    yield bucket
    bucket.objects.all().delete()
    bucket.delete()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """On SQLite, the test database is a file in WAL mode, as `make run` serves, not Django's
    in-memory default: with that, the live server hands its one connection to every request
    thread (an in-memory database lives in its connection), so a page's poll ran inside a
    write's transaction, which no real server does; with a file each thread has its own."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("database") / "runtree-test.sqlite3")
