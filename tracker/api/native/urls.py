from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.authentication import BaseAuthentication
from rest_framework.routers import APIRootView, DefaultRouter

from tracker.api.native.errors import NativeAPIMixin
from tracker.api.native.views import ExperimentViewSet, RunViewSet


class MiddlewareUser(BaseAuthentication):
    """The user tracker/web/auth.py's middleware found (session, token or Basic). DRF's own
    authentication is off, as access is the middleware's to decide; without this, the page's
    top bar would read an anonymous user and offer no "Log out"."""

    def authenticate(self, request):
        user = request._request.user
        return (user, None) if user.is_authenticated else None


class ApiDocsView(SpectacularSwaggerSplitView):
    # An HTML page: DRF would answer OPTIONS with its metadata rendered through the page's
    # template renderer, which has no template for it (a 500). GET and HEAD only.
    http_method_names = ["get", "head"]
    authentication_classes = [MiddlewareUser]


class NativeAPIRootView(NativeAPIMixin, APIRootView):
    """The list of the API's endpoints at /api/v1/, failing as the endpoints do."""


router = DefaultRouter()
router.APIRootView = NativeAPIRootView
router.register("experiments", ExperimentViewSet, basename="experiment")
router.register("runs", RunViewSet, basename="run")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI's assets come from drf-spectacular-sidecar, so this page works offline; the split
    # view serves its start-up script as a file (?script), as the Content-Security-Policy asks.
    path("docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
]
