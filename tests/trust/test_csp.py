"""Content-Security-Policy: every page carries one that lets scripts come only from Runtree's
own origin, never inline, and Chromium reports no violation on any page while it is used
(charts drawn, the tree expanded, the API docs loaded)."""

import os

import pytest
from django.core.management import call_command
from django.test import Client

from registry.models import RegisteredModel
from registry.services import registered_model_create
from tracker.models import Experiment, Run

pytestmark = pytest.mark.browser

# Registered before any page script: Chromium reports each blocked load or inline script here.
COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}`;
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || 'inline'} at ${where}`);
});
"""


@pytest.fixture
def demo(transactional_db):
    call_command("demo", stdout=open(os.devnull, "w"))


def demo_pages() -> list[str]:
    tuning = Experiment.objects.get(name="Nested Child Association")
    parent = Run.objects.filter(experiment=tuning, depth=0).order_by("start_time").first()
    children = list(Run.objects.filter(parent=parent).values_list("run_id", flat=True))
    if not RegisteredModel.objects.filter(name="csp-model").exists():
        registered_model_create(name="csp-model", description="the registry's pages, under the policy")
    return [
        "/",
        "/?show_deleted=1",
        f"/experiments/{tuning.pk}/",
        f"/experiments/{tuning.pk}/?filter=params.param1+%3D+%27x%27",
        f"/runs/{parent.run_id}/",
        f"/runs/{children[0]}/",
        f"/compare/?runs={','.join(children)}",
        f"/compare/?parent={parent.run_id}",
        "/models/",
        "/models/csp-model/",
        "/api/v1/docs/",
        "/api/v1/runs/",
        "/accounts/login/",
        "/no/such/page/",
    ]


def test_every_page_sends_the_policy(demo):
    client = Client(raise_request_exception=False)
    for path in demo_pages():
        policy = client.get(path).headers.get("Content-Security-Policy", "")
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
        # Only the compare page evaluates code (plotly's WebGL charts): see dashboard/compare_views.py.
        expected = "'self' 'unsafe-eval'" if path.startswith("/compare/") else "'self'"
        assert directives.get("script-src") == expected, path
        assert directives.get("object-src") == "'none'", path
        assert directives.get("frame-ancestors") == "'none'", path
        assert directives.get("base-uri") == "'self'", path


def test_chromium_reports_no_violation_on_any_page(browser, live_server, demo):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    context.add_init_script(COLLECT_VIOLATIONS)
    page = context.new_page()
    console = []
    page.on("console", lambda message: console.append(f"{page.url}: {message.text}"))
    violations = []
    try:
        for path in demo_pages():
            page.goto(path)
            page.wait_for_load_state("networkidle")
            if path.startswith("/experiments/"):
                for button in page.locator('button[aria-expanded="false"]').all()[:3]:
                    button.click()
                page.wait_for_load_state("networkidle")
            if path.startswith(("/compare/", "/runs/")) and page.locator("script[type='application/json']").count():
                page.wait_for_selector("div.js-plotly-plot")
            if path == "/api/v1/docs/":
                page.wait_for_selector(".swagger-ui .info")
            violations += [f"{path}: {v}" for v in page.evaluate("window.__cspViolations")]
    finally:
        context.close()
    assert violations == []
    assert [line for line in console if "Content Security Policy" in line] == []


def test_the_check_sees_a_violation(browser, live_server, demo):
    """Not vacuous: an inline script on a Runtree page is blocked and reported."""
    context = browser.new_context(base_url=live_server.url)
    context.add_init_script(COLLECT_VIOLATIONS)
    page = context.new_page()
    page.goto("/")
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
        " document.body.append(s); }"
    )
    page.wait_for_timeout(100)
    assert page.evaluate("window.ran") is None
    assert page.evaluate("window.__cspViolations")
    context.close()
