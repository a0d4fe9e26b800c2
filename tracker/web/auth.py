"""Access control for teams, in one place: who may read and who may log.

`RUNTREE_AUTH=off` (the default; `make run` listens on 127.0.0.1 only) leaves everything open.
With `RUNTREE_AUTH=required`:
- pages need a login (Django's auth, a session cookie);
- the APIs (/api/2.0/mlflow/, /ajax-api/2.0/mlflow/, the artifact store under
  /api/2.0/mlflow-artifacts/ and /ajax-api/2.0/mlflow-artifacts/, /api/v1/) need an API token
  (`Authorization: Bearer ...`, which the mlflow client sends from MLFLOW_TRACKING_TOKEN),
  HTTP Basic with a user's name and password (MLFLOW_TRACKING_USERNAME/PASSWORD), or the
  session of a logged-in browser (the dashboard's own fetches; its writes then need the
  CSRF token, since only a header credential proves the request was not forged by a page);
- MLflow 3's server-info answers everyone, as MLflow's own auth lets it: clients read it before
  they log in, and it says how the server is set up, nothing that is stored;
- a user is a *viewer* (reads: downloads and lists artifacts too) or a *writer* (reads, logs,
  uploads and deletes artifacts: any method but GET/HEAD/OPTIONS is a write), by Django group; a superuser
  is a writer; a user in neither group may do nothing.

The setting is read per request, so tests can flip it with `settings`/override_settings.
Views stay unaware of all this: the middleware refuses before a view runs, so a refused
write stores nothing.
"""

import base64
import binascii
import hashlib
import secrets
import time

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.utils import timezone

from tracker.models import ApiToken
from tracker.web.faults import is_api_request
from tracker.web.json_errors import error_body

VIEWER = "viewer"
WRITER = "writer"
ROLE_GROUPS = {VIEWER: "viewers", WRITER: "writers"}

# The MLflow RPCs that are POSTs but only read: a viewer may call them.
_MLFLOW_PREFIXES = ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/")
_READ_ONLY_RPCS = ("runs/search", "experiments/search", "registered-models/get-latest-versions")
READ_ONLY_POSTS = frozenset(prefix + rpc for prefix in _MLFLOW_PREFIXES for rpc in _READ_ONLY_RPCS)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Exact paths: the only API answers that need no credential (tracker/api/mlflow/views.py server_info).
PUBLIC_API_PATHS = frozenset({"/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info"})

# Django's admin has its own staff login; the login and logout pages must be reachable to log in.
_PUBLIC_PAGE_PREFIXES = ("/admin/",)

_CHALLENGE = 'Bearer realm="Runtree", Basic realm="Runtree"'


def auth_required() -> bool:
    return settings.RUNTREE_AUTH == "required"


# --- roles ------------------------------------------------------------------------------------


def role_of(user) -> str | None:
    """VIEWER, WRITER, or None for a user who may do nothing (inactive, or in neither group)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return WRITER
    groups = set(user.groups.filter(name__in=ROLE_GROUPS.values()).values_list("name", flat=True))
    roles = [role for role in (WRITER, VIEWER) if ROLE_GROUPS[role] in groups]
    return roles[0] if roles else None


def may_write(user) -> bool:
    """Whether pages should offer `user` their edit controls (the middleware enforces it)."""
    return not auth_required() or role_of(user) == WRITER


def user_set_role(*, user, role: str) -> None:
    """Make `user` a viewer or a writer (and not the other)."""
    if role not in ROLE_GROUPS:
        raise ValueError(f"role must be one of {sorted(ROLE_GROUPS)}, got {role!r}")
    with transaction.atomic():
        groups = {name: Group.objects.get_or_create(name=name)[0] for name in ROLE_GROUPS.values()}
        user.groups.remove(*groups.values())
        user.groups.add(groups[ROLE_GROUPS[role]])


# --- API tokens -------------------------------------------------------------------------------


def _token_digest(raw_token: str) -> str:
    # A fast hash is enough here, unlike for passwords: a token is 256 random bits, so nobody
    # can guess their way back from a leaked digest, and a slow hash (PBKDF2) would cost a
    # noticeable fraction of a second on every API request.
    return hashlib.sha256(raw_token.encode()).hexdigest()


def token_issue(*, user) -> str:
    """A new token for `user`. Returned once, never stored: only its digest is kept."""
    raw_token = secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, prefix=raw_token[:8], digest=_token_digest(raw_token))
    return raw_token


def token_revoke(*, user, prefix: str) -> int:
    """Revoke `user`'s active tokens that start with `prefix`; the number revoked."""
    prefix = prefix[:8]
    return ApiToken.objects.active().filter(user=user, prefix=prefix).update(revoked_at=timezone.now())


def user_for_token(raw_token: str):
    token = ApiToken.objects.active().select_related("user").filter(digest=_token_digest(raw_token)).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


# --- HTTP Basic -------------------------------------------------------------------------------

# Checking a password costs a deliberately slow hash (Django's PBKDF2: a good part of a
# second), and the mlflow client sends the password with every request. So a password that
# checked out is remembered in this process for a few minutes, by a digest that includes the
# stored password hash: changing the password (or the user going inactive) ends it at once.
_BASIC_REMEMBER_SECONDS = 300
_BASIC_REMEMBER_MAX = 10_000
_verified_basic: dict[str, float] = {}


def _basic_key(user, password: str) -> str:
    return hashlib.sha256(f"{user.pk}\0{user.password}\0{password}".encode()).hexdigest()


def user_for_basic(request, encoded: str):
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user_model = get_user_model()
    user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}, is_active=True).first()
    if user is not None and _verified_basic.get(_basic_key(user, password), 0) > time.monotonic():
        return user
    user = authenticate(request, username=username, password=password)
    if user is not None:
        if len(_verified_basic) >= _BASIC_REMEMBER_MAX:
            _verified_basic.clear()
        _verified_basic[_basic_key(user, password)] = time.monotonic() + _BASIC_REMEMBER_SECONDS
    return user


# --- the middleware ---------------------------------------------------------------------------


def _is_write(request) -> bool:
    return request.method not in SAFE_METHODS and request.path_info not in READ_ONLY_POSTS


def _unauthenticated(message: str):
    response = error_body("UNAUTHENTICATED", message, status=401)
    response["WWW-Authenticate"] = _CHALLENGE
    return response


def _permission_denied(message: str):
    return error_body("PERMISSION_DENIED", message, status=403)


class AccessControlMiddleware:
    """Refuses, before any view runs, a request that `RUNTREE_AUTH=required` does not allow.
    Goes after AuthenticationMiddleware (it reads request.user) and CsrfViewMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.csrf = CsrfViewMiddleware(get_response)

    def __call__(self, request):
        if auth_required():
            refusal = self._api_refusal(request) if is_api_request(request) else self._page_refusal(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def _api_refusal(self, request):
        if request.path_info in PUBLIC_API_PATHS:
            return None
        scheme, _, credential = request.headers.get("Authorization", "").strip().partition(" ")
        scheme, credential = scheme.lower(), credential.strip()
        if scheme == "bearer":
            user = user_for_token(credential)
            if user is None:
                return _unauthenticated("The API token is not valid: it is unknown or was revoked.")
        elif scheme == "basic":
            user = user_for_basic(request, credential)
            if user is None:
                return _unauthenticated("Invalid user name or password.")
        elif scheme:
            return _unauthenticated(f"Unsupported authorization scheme {scheme!r}: use Bearer (a token) or Basic.")
        elif request.user.is_authenticated:
            # A browser's session: a cookie rides along with a forged cross-site request too.
            if _is_write(request) and self.csrf.process_view(request, None, (), {}) is not None:
                return _permission_denied("CSRF check failed: a write with a session cookie needs the CSRF token.")
            user = request.user
        else:
            return _unauthenticated(
                "Authentication required: send an API token (Authorization: Bearer, e.g. from "
                "MLFLOW_TRACKING_TOKEN) or a user name and password (HTTP Basic, from "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)."
            )
        request.user = user
        role = role_of(user)
        if role is None:
            return _permission_denied(f"User '{user.get_username()}' has no role (viewer or writer) on this server.")
        if role != WRITER and _is_write(request):
            return _permission_denied(f"User '{user.get_username()}' is a viewer: viewers may read but not write.")
        return None

    def _page_refusal(self, request):
        path = request.path_info
        if path.startswith(_PUBLIC_PAGE_PREFIXES) or path in (reverse("login"), reverse("logout")):
            return None
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        role = role_of(request.user)
        if role is None or (role != WRITER and request.method not in SAFE_METHODS):
            # Rendered by handler403, in the product's look.
            raise PermissionDenied("Your account may not do this; ask an administrator for a role.")
        return None
