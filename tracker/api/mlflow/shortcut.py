"""The MLflow tracking API's short way through Django.

The mlflow client logs a sweep one blocking call per value, so each call's fixed cost is paid
thousands of times, and Django's was half of a small write's time in-process: resolving the URL
through every pattern, and ten middleware, most of them for pages (sessions, CSRF, messages,
static files, frame options). Placed right after SecurityMiddleware (HTTPS redirects and
headers still apply), this sends a tracking RPC straight to its view.

Nothing the API relies on is skipped: the Host header is checked against ALLOWED_HOSTS as
CommonMiddleware would, a lost database is a 503 as tracker.web.faults says, any other error reaches
Django's 500 handler, and the request signals still open and close database connections. With
RUNTREE_AUTH=required every request takes the whole chain: access control needs the session.
"""

from django.urls import URLPattern
from django.urls.resolvers import RoutePattern

from tracker.api.mlflow import urls as mlflow_urls
from tracker.web.auth import auth_required
from tracker.web.faults import DATABASE_UNAVAILABLE, DatabaseUnavailableMiddleware

# config/urls.py mounts the same RPCs under both.
MLFLOW_API_PREFIXES = ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/")


def _views_by_path() -> dict:
    return {
        prefix + str(pattern.pattern): pattern.callback
        for prefix in MLFLOW_API_PREFIXES
        for pattern in mlflow_urls.urlpatterns
        if isinstance(pattern, URLPattern) and isinstance(pattern.pattern, RoutePattern)
    }


class TrackingApiShortcut:
    def __init__(self, get_response):
        self.get_response = get_response
        self.views = _views_by_path()
        self.faults = DatabaseUnavailableMiddleware(get_response)

    def __call__(self, request):
        view = self.views.get(request.path_info)
        if view is None or auth_required():
            return self.get_response(request)  # the whole chain (an unknown path: its JSON 404)
        request.get_host()  # raises DisallowedHost (a 400) for a host not in ALLOWED_HOSTS
        try:
            return view(request)
        except DATABASE_UNAVAILABLE as error:
            return self.faults.process_exception(request, error)
