"""Markup logged as names and values is shown as text, never run, on every page that shows it.

Chromium opens the pages (and the API's JSON) holding runs whose names, param values, tag
values and experiment name are classic injection payloads. Any alert() fails the test, and so
does any element or attribute a payload could have made."""

import json
from urllib.parse import urlencode

import mlflow
import pytest
import requests

from tests.trust.conftest import reset_mlflow
from tracker.models import Experiment, Run

PAYLOADS = [
    "<script>alert(1)</script>",
    '"onmouseover="alert(1)',
    "</textarea>",
    "javascript:alert(1)",
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "'><svg onload=alert(1)>",
]
EXPERIMENT = "hostile " + " ".join(PAYLOADS[:5])
# Allowed by MLflow's key rule (letters, digits, _ - . space / :), so it reaches the pages.
SUSPICIOUS_KEY = "javascript:alert"

# What a payload would have made had it been parsed as markup.
INJECTED = ", ".join(
    [
        'img[src="x"]',
        "[onmouseover]",
        "[onerror]",
        "[onload]",
        'a[href^="javascript:"]',
        'form[action^="javascript:"]',
    ]
)
EXECUTABLE_SCRIPTS_MENTIONING_ALERT = """
    () => [...document.querySelectorAll('script')]
        .filter(s => (!s.type || s.type.includes('javascript')) && s.textContent.includes('alert('))
        .length
"""

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium(browser):
    return browser


@pytest.fixture
def hostile_sweep(tracking_uri):
    """A parent named with a payload and one child per payload, through the mlflow client."""
    experiment_id = mlflow.create_experiment(EXPERIMENT, tags={"note": PAYLOADS[4]})
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run(run_name=PAYLOADS[0]) as parent:
        mlflow.set_tag("note", PAYLOADS[1])
        for index, payload in enumerate(PAYLOADS):
            with mlflow.start_run(run_name=payload, nested=True):
                mlflow.log_params({"note": payload, SUSPICIOUS_KEY: payload})
                mlflow.set_tag("note", payload)
                for step in range(3):
                    mlflow.log_metric("loss", 1 / (1 + step + index), step=step)
                mlflow.log_metric(SUSPICIOUS_KEY, index)
    reset_mlflow()
    return Experiment.objects.get(pk=experiment_id), parent.info.run_id


def test_payloads_show_as_text_and_never_run(chromium, live_server, hostile_sweep):
    experiment, parent_run_id = hostile_sweep
    children = list(Run.objects.filter(parent__run_id=parent_run_id).order_by("pk").values_list("run_id", "name"))
    assert sorted(name for _, name in children) == sorted(PAYLOADS)
    columns = f"params.note,params.{SUSPICIOUS_KEY},metrics.loss,metrics.{SUSPICIOUS_KEY}"
    tree = f"/experiments/{experiment.pk}/"
    pages = [
        ("/?" + urlencode({"q": PAYLOADS[0]}), []),
        ("/", [EXPERIMENT]),
        (tree + "?" + urlencode({"columns": columns}), [EXPERIMENT, *PAYLOADS]),
        (tree + "?" + urlencode({"filter": f"tags.note = '{PAYLOADS[4]}'", "columns": columns}), [PAYLOADS[4]]),
        (tree + "?" + urlencode({"filter": PAYLOADS[5]}), ["does not parse", PAYLOADS[5]]),  # echoes the input
        (f"/runs/{parent_run_id}/", [PAYLOADS[0], PAYLOADS[1]]),
        *[(f"/runs/{run_id}/", [name]) for run_id, name in children],
        ("/compare/?" + urlencode({"runs": ",".join(run_id for run_id, _ in children)}), PAYLOADS),
        (f"/compare/?parent={parent_run_id}", PAYLOADS),
        *[(f"/api/2.0/mlflow/runs/get?run_id={run_id}", []) for run_id, _ in children[:2]],
        (f"/api/2.0/mlflow/experiments/get?experiment_id={experiment.pk}", []),
        # DRF's browsable API: an HTML page showing JSON, where a name's quotes read \".
        *[(f"/api/v1/runs/{run_id}/", [json.dumps(name)[1:-1]]) for run_id, name in children[:2]],
        (f"/api/v1/runs/?experiment_id={experiment.pk}", []),
    ]
    context = chromium.new_context(base_url=live_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    alerts = []
    page.on("dialog", lambda dialog: (alerts.append(f"{page.url}: {dialog.message}"), dialog.dismiss()))
    problems = []
    try:
        for path, shown in pages:
            response = page.goto(path)
            assert response.status in (200, 400), (path, response.status)
            if path.startswith(tree):
                expand_every_parent(page)
            for element in page.locator("h1:visible, .run-link:visible").all()[:20]:
                # Would fire an injected onmouseover (dispatched: a hovered parent row shows its
                # "compare children" link over the name, which would take a real pointer's hover).
                element.dispatch_event("mouseover")
            page.wait_for_timeout(100)  # lets a stray onerror/onload fire
            injected = page.locator(INJECTED).count() + page.evaluate(EXECUTABLE_SCRIPTS_MENTIONING_ALERT)
            if injected:
                problems.append(f"{path}: {injected} element(s) made from a payload")
            text = page.locator("body").inner_text()
            # A long name is drawn in two parts (its end kept in sight, dashboard/names.py), which
            # innerText reads on two lines.
            joined = text.replace("\n", "")
            problems += [f"{path}: {payload!r} is not shown as text" for payload in shown if payload not in joined]
    finally:
        context.close()
    assert alerts == []
    assert problems == []


def test_the_checks_catch_a_payload_that_was_not_escaped(chromium):
    """The checks above are not vacuous: the same payloads pasted raw into a page are caught."""
    page = chromium.new_page()
    alerts = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.set_content("".join(f'<div title="{payload}">{payload}</div>' for payload in PAYLOADS))
    page.locator("[onmouseover]").first.hover()
    page.wait_for_timeout(300)
    assert alerts
    assert page.locator(INJECTED).count() >= 3
    assert page.evaluate(EXECUTABLE_SCRIPTS_MENTIONING_ALERT) >= 1
    page.close()


def expand_every_parent(page):
    for button in page.locator('button[aria-expanded="false"]').all():
        button.click()
    page.wait_for_function("() => !document.querySelector('button[aria-expanded=\"false\"]')")
    page.wait_for_load_state("networkidle")


def test_the_api_json_carries_the_payloads_verbatim(live_server, hostile_sweep):
    experiment, _ = hostile_sweep
    body = {"experiment_ids": [str(experiment.pk)]}
    runs = requests.post(f"{live_server.url}/api/2.0/mlflow/runs/search", json=body, timeout=30).json()["runs"]
    assert sorted(run["info"]["run_name"] for run in runs if run["info"]["run_name"] in PAYLOADS) == sorted(
        PAYLOADS + [PAYLOADS[0]]
    )
