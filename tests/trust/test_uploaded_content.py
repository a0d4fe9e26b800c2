"""Uploaded files never run on Runtree's origin: every response that serves an artifact's bytes,
shown on the run page or downloaded through MLflow's API, carries the sandboxing policy of
tracker/web/uploaded_content.py, and in Chromium an uploaded HTML or SVG file with a script runs
nothing, whichever way it is opened."""

import pytest
import requests
from mlflow import MlflowClient

from tests.trust.conftest import reset_mlflow

# Each would mark the page it runs in (or the one around it) if any of it ran: it must not.
HOSTILE_HTML = b"""<!doctype html><title>report</title><p id="body">a report</p>
<script>document.title = "script ran"; try { top.document.body.dataset.pwned = "yes" } catch (e) {}</script>
<img src="x" onerror="document.title = 'onerror ran'">
<form action="https://attacker.example/"><input name="q"></form>"""
HOSTILE_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" onload="document.title='onload ran'">
<title>drawing</title><script>document.title = "script ran"</script>
<rect width="40" height="40" fill="teal"/></svg>"""
HOSTILE_SCRIPT = b'document.title = "script ran"; document.body.dataset.pwned = "yes"'
FILES = {
    "report.html": HOSTILE_HTML,
    "drawing.svg": HOSTILE_SVG,
    "notes.txt": b"<script>alert(1)</script>",
    "tool.js": HOSTILE_SCRIPT,
}


@pytest.fixture
def uploads(live_server, default_experiment):
    """The hostile files stored through the artifact API, in a run's folder and in a logged
    model's (registered as version 1 of "card"): (run_id, {name: every URL that serves that
    file's bytes})."""
    client = MlflowClient(tracking_uri=live_server.url)
    run = client.create_run("0")
    model = client.create_logged_model("0", name="card")
    client.create_registered_model("card")
    client.create_model_version("card", f"models:/{model.model_id}", model_id=model.model_id)
    run_id = run.info.run_id
    urls = {}
    for name, data in FILES.items():
        for folder in (f"0/{run_id}/artifacts", f"0/models/{model.model_id}/artifacts"):
            stored = requests.put(f"{live_server.url}/api/2.0/mlflow-artifacts/artifacts/{folder}/{name}", data=data)
            assert stored.status_code == 200, stored.text
        urls[name] = [
            f"/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/{name}",
            f"/ajax-api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/{name}",
            f"/api/2.0/mlflow-artifacts/artifacts/0/models/{model.model_id}/artifacts/{name}",
            f"/get-artifact?run_id={run_id}&path={name}",
            f"/model-versions/get-artifact?name=card&version=1&path={name}",
        ]
    urls["report.html"].append(f"/runs/{run_id}/artifacts/inline/?path=report.html")
    urls["drawing.svg"].append(f"/runs/{run_id}/artifacts/inline/?path=drawing.svg")
    yield run_id, urls
    reset_mlflow()


def directives(policy: str) -> dict[str, str]:
    parsed = {}
    for directive in policy.split(";"):
        name, _, value = directive.strip().partition(" ")
        parsed[name] = value.strip()
    return parsed


def test_every_response_with_uploaded_bytes_is_sandboxed(live_server, uploads):
    _, urls = uploads
    for name, paths in urls.items():
        for path in paths:
            # The run page's inline URL answers GET only (HEAD is a 405, with no bytes).
            for method in ("GET",) if "/inline/" in path else ("GET", "HEAD"):
                response = requests.request(method, live_server.url + path, timeout=10)
                assert response.status_code == 200, (method, path)
                if method == "GET":
                    assert response.content == FILES[name], path
                policy = directives(response.headers["Content-Security-Policy"])
                assert policy["sandbox"] == "", f"{path}: the sandbox may allow nothing ({policy['sandbox']})"
                assert policy["default-src"] == "'none'", path
                assert policy["base-uri"] == policy["form-action"] == "'none'", path
                assert "script-src" not in policy and "'unsafe-eval'" not in response.headers["Content-Security-Policy"]
                assert response.headers["X-Content-Type-Options"] == "nosniff", path
                assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin", path
                if "/inline/" in path:  # shown by the run page: framed by Runtree only
                    assert policy["frame-ancestors"] == "'self'", path
                    assert response.headers["Content-Disposition"].startswith("inline")
                else:  # a download: saved, never rendered, never framed, never run as a script
                    assert policy["frame-ancestors"] == "'none'", path
                    assert response.headers["Content-Disposition"].startswith("attachment"), path
                    expected_type = "text/plain" if name == "notes.txt" else "application/octet-stream"
                    assert response.headers["Content-Type"].partition(";")[0] == expected_type, path


@pytest.fixture
def chromium_page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, accept_downloads=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def assert_nothing_ran(page, title: str):
    assert page.evaluate("document.title") == title
    assert page.evaluate("document.body ? document.body.dataset.pwned : undefined") is None
    assert page.dialogs == []


@pytest.mark.browser
@pytest.mark.parametrize(("name", "title"), [("report.html", "report"), ("drawing.svg", "drawing")])
def test_an_uploaded_document_opened_on_its_own_runs_no_script(chromium_page, uploads, name, title):
    run_id, _ = uploads
    chromium_page.goto(f"/runs/{run_id}/artifacts/inline/?path={name}")
    # It is shown (the SVG as a document: its <title> is the page's), and nothing of it ran.
    assert_nothing_ran(chromium_page, title)
    # A unique origin: even had a script run, Runtree's cookies and pages were out of its reach.
    assert chromium_page.evaluate("window.origin") == "null"


@pytest.mark.browser
def test_the_run_page_shows_them_without_running_them(chromium_page, uploads):
    run_id, _ = uploads
    page = chromium_page
    page.goto(f"/runs/{run_id}/")
    title = page.title()
    page.locator('[data-artifact-path="drawing.svg"] summary').click()
    image = page.locator("img.artifact-image")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    page.locator('[data-artifact-path="report.html"] summary').click()
    frame = page.locator("iframe.artifact-html").element_handle().content_frame()
    frame.wait_for_selector("#body")
    assert frame.evaluate("document.title") == "report"
    assert_nothing_ran(page, title)


@pytest.mark.browser
def test_a_download_url_opened_in_the_browser_is_saved_not_rendered(chromium_page, uploads, live_server):
    run_id, urls = uploads
    page = chromium_page
    page.goto(f"/runs/{run_id}/")
    title = page.title()
    for name in ("report.html", "drawing.svg"):
        for path in urls[name]:
            if "/inline/" in path:
                continue
            with page.expect_download() as download:
                page.evaluate("url => { const a = document.createElement('a'); a.href = url; a.click() }", path)
            assert download.value.path().read_bytes() == FILES[name]
    assert page.url == f"{live_server.url}/runs/{run_id}/"  # never left for the file
    assert_nothing_ran(page, title)


@pytest.mark.browser
def test_an_uploaded_script_loaded_by_a_runtree_page_does_not_run(chromium_page, uploads):
    # The pages' policy allows scripts from Runtree's origin ('self'); an uploaded .js must not
    # be one, so an HTML injection, were there one, could not load it as a script.
    run_id, urls = uploads
    page = chromium_page
    page.goto(f"/runs/{run_id}/")
    title = page.title()
    for path in urls["tool.js"]:
        outcome = page.evaluate(
            """src => new Promise(done => {
                const script = document.createElement("script");
                script.onload = () => done("loaded");
                script.onerror = () => done("refused");
                script.src = src;
                document.head.append(script);
            })""",
            path,
        )
        assert outcome == "refused", path
    assert_nothing_ran(page, title)
