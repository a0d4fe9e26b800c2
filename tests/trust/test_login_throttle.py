"""Password guesses are throttled: after RUNTREE_LOGIN_FAILURE_LIMIT failures for one user, or
from one address, the login form and HTTP Basic refuse even the right password for a while;
API tokens are never slowed."""

import base64
import time

import pytest
from django.test import Client

from tests.trust.conftest import PASSWORD, make_user
from tracker.web.auth import token_issue

LIMIT = 3
API = "/api/2.0/mlflow/experiments/search"


@pytest.fixture(autouse=True)
def small_limit(settings, auth_required):
    settings.AXES_FAILURE_LIMIT = LIMIT


def basic(username: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def log_in(client, username, password, address="10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_the_login_form_locks_a_user_out_after_repeated_failures(writer):
    client = Client()
    for _ in range(LIMIT - 1):
        assert log_in(client, writer.username, "wrong").status_code == 200  # the form, with its error
    assert log_in(client, writer.username, "wrong").status_code == 429  # the last guess allowed
    response = log_in(client, writer.username, PASSWORD)
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert client.get("/").status_code == 302  # not logged in
    # ... from another address too: the user name is locked.
    assert log_in(Client(), writer.username, PASSWORD, address="10.0.0.2").status_code == 429


def test_one_address_guessing_at_many_names_is_locked_out(writer):
    for index in range(LIMIT):
        log_in(Client(), f"nobody{index}", "wrong", address="10.0.0.9")
    assert log_in(Client(), writer.username, PASSWORD, address="10.0.0.9").status_code == 429
    assert log_in(Client(), writer.username, PASSWORD, address="10.0.0.10").status_code == 302  # logged in


def test_basic_auth_is_locked_out_after_repeated_failures_and_says_so(writer):
    client = Client()
    for _ in range(LIMIT - 1):
        assert client.get(API, headers=basic(writer.username, "wrong")).status_code == 401
    assert client.get(API, headers=basic(writer.username, "wrong")).status_code == 403
    response = client.get(API, headers=basic(writer.username, PASSWORD))
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert "Too many failed logins" in response.json()["message"]


def test_a_good_token_is_never_slowed_by_anyones_guesses(writer):
    token = token_issue(user=writer)
    client = Client()
    for _ in range(LIMIT + 2):
        client.get(API, headers=basic(writer.username, "wrong"))
    started = time.monotonic()
    for _ in range(5):
        assert client.get(API, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert time.monotonic() - started < 1


def test_a_few_mistakes_do_not_lock_anyone_out(writer):
    client = Client()
    for _ in range(LIMIT - 1):
        log_in(client, writer.username, "wrong")
    assert log_in(client, writer.username, PASSWORD).status_code == 302


@pytest.fixture
def writer(transactional_db):
    return make_user("wanda", "writer")
