"""A write to the APIs sent by another site's page is refused, whatever RUNTREE_AUTH says.

With auth off (`make run`'s default) the APIs take writes from anyone who can reach them, and a
browser is one: a page on any site can post a form at Runtree on 127.0.0.1. It cannot send
`Content-Type: application/json` cross-site without a CORS preflight, which Runtree never
grants, but an `enctype="text/plain"` form can carry a body that parses as JSON. Two checks,
either of which stops it (the same two `mlflow server` makes):

- here, every API write whose `Origin` header names another origin than the server's own
  (or one in CSRF_TRUSTED_ORIGINS) is a 403. Browsers send Origin with every cross-origin POST,
  PUT, PATCH and DELETE; scripts (the mlflow client, curl) send none and are not affected.
- the MLflow RPCs read a JSON body only when it is declared as JSON
  (tracker/api/mlflow/views.py `_request_fields`), for a browser that leaves Origin out.

With RUNTREE_AUTH=required a session cookie's write also needs the CSRF token
(tracker/web/auth.py); this check comes first and applies to API tokens too, which is harmless:
a script sends no Origin.
"""

from django.conf import settings

from tracker.web.auth import SAFE_METHODS
from tracker.web.faults import is_api_request
from tracker.web.json_errors import error_body


def _is_own_origin(request, origin: str) -> bool:
    # request.get_host() checks the Host against ALLOWED_HOSTS (a 400 otherwise), as the
    # shortcut and CommonMiddleware would; the scheme follows SECURE_PROXY_SSL_HEADER.
    return origin == f"{request.scheme}://{request.get_host()}" or origin in settings.CSRF_TRUSTED_ORIGINS


class CrossSiteApiWriteGuard:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        origin = request.headers.get("Origin")
        if (
            origin is not None
            and request.method not in SAFE_METHODS
            and is_api_request(request)
            and not _is_own_origin(request, origin)
        ):
            return error_body(
                "PERMISSION_DENIED",
                f"Cross-origin request blocked: a write to the API from a page at {origin!r}. "
                "Scripts send no Origin header; a trusted site goes in CSRF_TRUSTED_ORIGINS.",
                status=403,
            )
        return self.get_response(request)
