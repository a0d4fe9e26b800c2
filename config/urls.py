import re

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from registry.api.mlflow_artifacts import get_model_version_artifact
from tracker.api.mlflow.artifacts import get_artifact
from tracker.api.mlflow.views import endpoint_not_found, server_info

# Every prefix the mlflow client and UI call; an unknown path under one answers MLflow's JSON 404.
MLFLOW_PREFIXES = (
    "api/2.0/mlflow/",
    "ajax-api/2.0/mlflow/",
    "api/2.0/mlflow-artifacts/",
    "ajax-api/2.0/mlflow-artifacts/",
    # MLflow 3's newer RPCs (server-info, traces) live under 3.0.
    "api/3.0/mlflow/",
    "ajax-api/3.0/mlflow/",
)

urlpatterns = [
    path("admin/", admin.site.urls),
    # Login and logout pages, needed when RUNTREE_AUTH=required (tracker/web/auth.py).
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The MLflow-compatible tracking API, under both prefixes the mlflow client and UI use.
    path("api/2.0/mlflow/", include("tracker.api.mlflow.urls")),
    path("ajax-api/2.0/mlflow/", include("tracker.api.mlflow.urls")),
    # The model registry's RPCs, under the same two prefixes.
    path("api/2.0/mlflow/", include("registry.api.mlflow_urls")),
    path("ajax-api/2.0/mlflow/", include("registry.api.mlflow_urls")),
    # MLflow's proxied artifact store (`mlflow server --serve-artifacts`), and its UI's download.
    path("api/2.0/mlflow-artifacts/", include("tracker.api.mlflow.artifact_urls")),
    path("ajax-api/2.0/mlflow-artifacts/", include("tracker.api.mlflow.artifact_urls")),
    path("get-artifact", get_artifact, name="get-artifact"),
    # A registered version's files, where mlflow serves them: at the root, as get-artifact (not
    # under an MLflow prefix); its UI reads a version's MLmodel there.
    path("model-versions/get-artifact", get_model_version_artifact, name="model-version-get-artifact"),
    # MLflow 3's server-info (what the server offers), under both 3.0 prefixes.
    path("api/3.0/mlflow/server-info", server_info),
    path("ajax-api/3.0/mlflow/server-info", server_info),
    # Other apps' MLflow urls go above this line: the catch-all below must come after all of them.
    # Anything else under an MLflow prefix, with any method, answers MLflow's JSON
    # ENDPOINT_NOT_FOUND, not Django's HTML 404 (or its CSRF 403 for a POST).
    *[re_path("^" + re.escape(prefix), endpoint_not_found) for prefix in MLFLOW_PREFIXES],
    # The native API (Django REST framework): the registry's listings, then tracker's.
    path("api/v1/", include("registry.api.native_urls")),
    path("api/v1/", include("tracker.api.native.urls")),
    path("", include("dashboard.urls")),
]

# Errors without stack traces: JSON on the APIs, pages in the product's look elsewhere.
handler400 = "tracker.web.faults.bad_request"
handler403 = "tracker.web.faults.permission_denied"
handler404 = "tracker.web.faults.page_not_found"
handler500 = "tracker.web.faults.server_error"
