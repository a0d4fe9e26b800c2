from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # The MLflow-compatible tracking API, under both prefixes the mlflow client and UI use.
    path("api/2.0/mlflow/", include("tracker.api.mlflow_urls")),
    path("ajax-api/2.0/mlflow/", include("tracker.api.mlflow_urls")),
    # The native API (Django REST framework).
    path("api/v1/", include("tracker.api.native_urls")),
    path("", include("dashboard.urls")),
]
