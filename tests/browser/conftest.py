"""Browser tests: Playwright's sync API drives Debian's Chromium against pytest-django's
live_server. They fail, never skip, when Chromium is missing: a skipped browser test looks
green while nothing was checked."""

import copy
import json
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
def importance_fits() -> dict:
    """tracker.summaries.importance.param_importance's answers by their inputs, for the session."""
    return {}


@pytest.fixture
def demo(transactional_db, importance_fits, monkeypatch):
    """The demo workload, loaded by the lead's `demo` command, as `make run` shows it once its
    worker has caught up: the sweeps' param importance fitted (tasks run in-process here, where
    no fit is made: tracker/tasks.py queue_importance_refits).

    Every test loads the same demo (tracker/demo.py: a fixed seed) and the fit is deterministic
    (fixed seeds), so the fits of its five sweeps (~2 s, a forest and its permutations each) are
    made once a session and given again for the same inputs."""
    from django.core.management import call_command

    from tracker.summaries import importance

    fit = importance.param_importance

    def fit_once(params, values, **options):
        inputs = json.dumps([params, values, options], sort_keys=True)
        if inputs not in importance_fits:
            importance_fits[inputs] = fit(params, values, **options)
        return copy.deepcopy(importance_fits[inputs])

    call_command("demo", stdout=open(os.devnull, "w"))
    with monkeypatch.context() as patched:
        patched.setattr(importance, "param_importance", fit_once)
        for parent_pk in importance.stale_parents():
            importance.refresh_importance(parent_pk=parent_pk)
