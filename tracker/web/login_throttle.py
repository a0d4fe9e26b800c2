"""Throttling password guesses, by django-axes: after RUNTREE_LOGIN_FAILURE_LIMIT failed
passwords for one user name, or from one address, that user (or address) is locked out for
RUNTREE_LOGIN_LOCKOUT_MINUTES, on the login form and on HTTP Basic alike (both go through
Django's `authenticate`, which axes watches). Each guess costs the server a PBKDF2 hash (about
0.2 s), so unthrottled guessing was both a password attack and a cheap way to load the server.

API tokens never pass through `authenticate`: a script with a good token is never slowed or
locked out, whatever anyone guesses. django-axes keeps the failures in the database, so every
web worker and process sees the same count.
"""

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpResponse
from django.template import loader

from tracker.web.faults import is_api_request
from tracker.web.json_errors import error_body


class LoginThrottleBackend(AxesStandaloneBackend):
    """axes' gate, first in AUTHENTICATION_BACKENDS. A check without a request (the test client's
    login(), a management command) is no one guessing over HTTP: not counted, not refused."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_address(request) -> str | None:
    """The address guesses are counted by (AXES_CLIENT_IP_CALLABLE). Behind the TLS proxy
    (RUNTREE_HTTPS=1) every request comes from the proxy's address, so it is the one the proxy
    appended last to X-Forwarded-For, which a client cannot forge (the entries before it can)."""
    if settings.RUNTREE_HTTPS:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")


def _message() -> str:
    minutes = settings.RUNTREE_LOGIN_LOCKOUT_MINUTES
    return f"Too many failed logins for this user or from this address; try again in {minutes} minutes."


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """What a locked-out login gets (AXES_LOCKOUT_CALLABLE)."""
    if is_api_request(request):
        # 403, not 429: the mlflow client retries a 429 for minutes before it shows anything,
        # while a lockout lasts longer than that; a 403 stops the script with this message.
        return error_body("PERMISSION_DENIED", _message(), status=403)
    return HttpResponse(loader.render_to_string("registration/locked_out.html", {"message": _message()}), status=429)
