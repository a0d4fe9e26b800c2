"""Browser tests: Playwright's sync API drives Debian's Chromium against pytest-django's
live_server. They fail, never skip, when Chromium is missing: a skipped browser test looks
green while nothing was checked."""

import copy
import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
# thread with a running loop unless told that this is deliberate.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    # A page's load event waits for every chart its scripts draw: a compare page reaches it in
    # 3-4 s on an idle 2-core machine (plotly.js evaluated, parallel coordinates in software
    # WebGL), and past 10 s in CI, where the two suites share those cores. Speed is the benches'
    # business; a test waits long enough to check behaviour.
    context.set_default_navigation_timeout(30_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "favicon" not in message.text and "400" not in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert not problems, problems


@pytest.fixture(scope="session")
def demo_rows() -> dict:
    """The rows the first `demo` fixture of the session made, by model, to be put back later."""
    return {}


def _demo_models() -> list:
    from django.apps import apps

    return [
        model
        for app in ("tracker", "registry")
        for model in apps.get_app_config(app).get_models(include_auto_created=True)
    ]


def _put_back(rows: dict) -> None:
    """Insert the saved demo rows as they were, primary keys included, and move PostgreSQL's
    sequences past them (SQLite's follow an explicit key by themselves)."""
    from django.core.management.color import no_style
    from django.db import connection, transaction

    with transaction.atomic():  # foreign keys are checked at the commit, so any model order works
        for model, instances in rows.items():
            model._base_manager.bulk_create(copy.deepcopy(instances))
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), list(rows)):
                cursor.execute(statement)


@pytest.fixture
def demo(transactional_db, demo_rows):
    """The demo workload, loaded by the lead's `demo` command, as `make run` shows it once its
    worker has caught up: the sweeps' param importance fitted (tasks run in-process here, where
    no fit is made: tracker/tasks.py queue_importance_refits).

    The first test of the session loads it so (~3 s, half of it the summaries refreshed after
    each write, and the fits of five sweeps); the demo is the same every time (tracker/demo.py:
    a fixed seed; the fits are seeded too), so later tests get the same rows put back (~0.2 s)."""
    from django.core.management import call_command

    from tracker.summaries import importance

    if demo_rows:
        _put_back(demo_rows)
        return
    before = {model: set(model._base_manager.values_list("pk", flat=True)) for model in _demo_models()}
    call_command("demo", stdout=open(os.devnull, "w"))
    for parent_pk in importance.stale_parents():
        importance.refresh_importance(parent_pk=parent_pk)
    for model in _demo_models():
        made = [row for row in model._base_manager.order_by("pk") if row.pk not in before[model]]
        if made:
            demo_rows[model] = made
