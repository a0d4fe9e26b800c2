"""Hostile input that never reaches a browser: oversized and deeply nested bodies, keys made to
break out of markup, open redirects, and a deployment check that stays clean."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.test import Client

from tests.trust.conftest import PROJECT_DIR
from tracker.api.mlflow.views import LOG_BATCH_MAX_BYTES
from tracker.models import Experiment, Metric, Param, Run, RunTag

API = "/api/2.0/mlflow/"
MARKUP_KEYS = ["<script>alert(1)</script>", '"onmouseover="alert(1)', "</textarea>", "<img src=x onerror=alert(1)>"]


def post(client, rpc: str, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(API + rpc, data, content_type="application/json", **extra)


@pytest.fixture
def run(db):
    experiment = Experiment.objects.create(name="hostile", creation_time=0, last_update_time=0)
    return Run.objects.create(experiment=experiment, path="000000000001/")


@pytest.mark.parametrize("key", MARKUP_KEYS)
@pytest.mark.parametrize("kind", ["params", "metrics", "tags"])
def test_a_key_made_of_markup_is_refused_and_nothing_is_stored(client, run, key, kind):
    item = {"key": key, "value": 1.0, "timestamp": 1, "step": 0} if kind == "metrics" else {"key": key, "value": "v"}
    response = post(client, "runs/log-batch", {"run_id": run.run_id, kind: [item]})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert not (Param.objects.exists() or Metric.objects.exists() or RunTag.objects.filter(key=key).exists())


@pytest.mark.parametrize(
    "body",
    ["[" * 100_000 + "]" * 100_000, '{"a": ' * 100_000 + "1" + "}" * 100_000],
    ids=["lists", "objects"],
)
@pytest.mark.parametrize("rpc", ["runs/log-batch", "experiments/create", "runs/search"])
def test_json_nested_100000_deep_is_a_400_not_a_crash(client, db, body, rpc):
    response = post(client, rpc, body)
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "not valid JSON" in response.json()["message"]


def test_a_log_batch_above_its_limit_is_refused_clearly(client, run):
    # log-batch takes more than other calls (a legal batch in non-ASCII is up to 18.4 MB), not more.
    params = [{"key": f"p{i}", "value": "x" * 250_000} for i in range(100)]  # 25 MB
    response = post(client, "runs/log-batch", {"run_id": run.run_id, "params": params})
    assert response.status_code == 400
    assert response.json()["message"].startswith(
        f"Requests to {API}runs/log-batch must be at most {LOG_BATCH_MAX_BYTES} bytes"
    )
    assert not Param.objects.exists()


def test_any_api_body_above_the_server_limit_is_refused_before_it_is_read(client, run, settings):
    body = {"run_id": run.run_id, "key": "notes", "value": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    response = post(client, "runs/set-tag", body)
    assert response.status_code == 400
    assert f"must be at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes" in response.json()["message"]
    assert not RunTag.objects.filter(key="notes").exists()


def test_a_form_post_above_the_limit_is_a_400_page(db, settings):
    response = Client(raise_request_exception=False).post(
        "/accounts/login/", {"username": "x", "password": "y" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    )
    assert response.status_code == 400
    assert b"Bad request" in response.content
    assert b'class="topbar"' in response.content


def test_the_apis_answer_json_that_a_browser_will_not_sniff_as_html(client, run):
    Run.objects.filter(pk=run.pk).update(name="<script>alert(1)</script>")
    response = client.get(API + "runs/get", {"run_id": run.run_id})
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.json()["run"]["info"]["run_name"] == "<script>alert(1)</script>"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "javascript:alert(1)"])
def test_the_login_does_not_redirect_off_site(settings, client, target, django_user_model):
    django_user_model.objects.create_user("wanda", password="pw-for-the-redirect-test")
    response = client.post(
        "/accounts/login/", {"username": "wanda", "password": "pw-for-the-redirect-test", "next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_auth_required_refuses_to_start_without_a_secret_key():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env={"PATH": os.environ["PATH"], "RUNTREE_AUTH": "required", "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "RUNTREE_AUTH=required needs a SECRET_KEY" in result.stderr


def deploy_check(**env) -> subprocess.CompletedProcess:
    production = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "runtree.example.com",
        "RUNTREE_AUTH": "required",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        env={**production, **env},
        capture_output=True,
        text=True,
    )


def test_check_deploy_is_clean_for_a_production_environment():
    result = deploy_check(RUNTREE_HTTPS="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_names_what_is_missing_without_https():
    result = deploy_check(RUNTREE_HTTPS="0")
    assert result.returncode != 0
    for missing in ("W004", "W008", "W012", "W016"):  # HSTS, SSL redirect, secure session and CSRF cookies
        assert f"security.{missing}" in result.stderr


def test_check_deploy_flags_the_local_fallback_secret_key():
    result = deploy_check(RUNTREE_HTTPS="1", SECRET_KEY="", RUNTREE_AUTH="off")
    assert "security.W009" in result.stderr
