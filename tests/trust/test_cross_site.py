"""Another site's page cannot write to Runtree's APIs, even with auth off (`make run`): a form
it posts at the MLflow API (text/plain, a body that parses as JSON) changes nothing, whether the
browser says where it comes from (Origin: a 403) or not (not declared as JSON: a 400). Scripts,
the mlflow client and Runtree's own pages write as before."""

import http.server
import threading

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from tracker.models import Experiment, Run

EVIL = "https://evil.example"


def post_as_form(url: str, body: str, **headers) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": "text/plain;charset=UTF-8", **headers}, timeout=10)


@pytest.fixture
def run_id(tracking_uri):
    with mlflow.start_run() as run:
        mlflow.log_param("lr", "0.1")
    return run.info.run_id


@pytest.mark.parametrize("origin", [EVIL, "null", None])
@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"])
def test_a_forged_form_post_deletes_nothing(live_server, run_id, origin, prefix):
    headers = {} if origin is None else {"Origin": origin}
    response = post_as_form(f"{live_server.url}{prefix}/runs/delete", f'{{"run_id": "{run_id}"}}', **headers)
    assert response.status_code == (400 if origin is None else 403)
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error_code"] == ("INVALID_PARAMETER_VALUE" if origin is None else "PERMISSION_DENIED")
    assert Run.objects.get(run_id=run_id).lifecycle_stage == "active"


def test_a_json_write_from_another_origin_is_refused_and_from_its_own_or_a_script_taken(live_server, run_id, settings):
    url = f"{live_server.url}/api/2.0/mlflow/runs/set-tag"
    body = {"run_id": run_id, "key": "k", "value": "v"}
    refused = requests.post(url, json=body, headers={"Origin": EVIL}, timeout=10)
    assert refused.status_code == 403
    assert "Cross-origin request blocked" in refused.json()["message"]
    assert not Run.objects.get(run_id=run_id).tags.filter(key="k").exists()
    for headers in ({}, {"Origin": live_server.url}):  # a script; Runtree's own page
        assert requests.post(url, json=body, headers=headers, timeout=10).status_code == 200
    settings.CSRF_TRUSTED_ORIGINS = [EVIL]
    assert requests.post(url, json=dict(body, value="trusted"), headers={"Origin": EVIL}, timeout=10).status_code == 200
    assert Run.objects.get(run_id=run_id).tags.get(key="k").value == "trusted"


def test_an_artifact_upload_from_another_origin_stores_nothing(live_server, run_id, artifact_root):
    url = f"{live_server.url}/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/x.txt"
    response = requests.put(url, data=b"forged", headers={"Origin": EVIL}, timeout=10)
    assert response.status_code == 403
    assert not [path for path in artifact_root.rglob("*") if path.is_file()]


def test_reads_from_another_origin_still_answer(live_server, run_id):
    # A GET changes nothing, and its answer is not readable by the other page without CORS.
    response = requests.get(
        f"{live_server.url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, headers={"Origin": EVIL}, timeout=10
    )
    assert response.status_code == 200


def test_the_mlflow_client_logs_unchanged(tracking_uri):
    client = MlflowClient()
    experiment_id = client.create_experiment("still-works")
    run = client.create_run(experiment_id)
    client.log_batch(run.info.run_id, params=[mlflow.entities.Param("p", "1")])
    assert client.get_run(run.info.run_id).data.params == {"p": "1"}


@pytest.fixture
def other_site():
    """A page served from another origin, as an attacker's site would be: (its URL, a setter
    for the HTML it serves)."""
    served = {"html": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(served["html"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", lambda html: served.update(html=html.encode())
    server.shutdown()


@pytest.mark.browser
def test_another_sites_page_in_chromium_creates_and_deletes_nothing(browser, live_server, run_id, other_site):
    url, serve = other_site
    # The classic forgery of a JSON API: a text/plain form whose field name and value join to
    # '{"run_id": "...", "x": "="}', submitted by the page on load.
    serve(
        f"""<!doctype html><title>cute cats</title>
        <form id="create" method="post" target="one" enctype="text/plain"
              action="{live_server.url}/api/2.0/mlflow/experiments/create">
          <input name='{{"name": "forged", "x": "' value='"}}'></form>
        <form id="delete" method="post" target="two" enctype="text/plain"
              action="{live_server.url}/ajax-api/2.0/mlflow/runs/delete">
          <input name='{{"run_id": "{run_id}", "x": "' value='"}}'></form>
        <iframe name="one"></iframe><iframe name="two"></iframe>"""
    )
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        for form in ("create", "delete"):
            with page.expect_response(lambda response: "/mlflow/" in response.url) as answer:
                page.evaluate(f"document.getElementById('{form}').submit()")
            assert answer.value.status == 403
    finally:
        context.close()
    assert not Experiment.objects.filter(name="forged").exists()
    assert Run.objects.get(run_id=run_id).lifecycle_stage == "active"
