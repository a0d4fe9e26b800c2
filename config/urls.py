from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Login and logout pages, needed when RUNTREE_AUTH=required (tracker/web/auth.py).
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The MLflow-compatible tracking API, under both prefixes the mlflow client and UI use.
    path("api/2.0/mlflow/", include("tracker.api.mlflow.urls")),
    path("ajax-api/2.0/mlflow/", include("tracker.api.mlflow.urls")),
    # The native API (Django REST framework).
    path("api/v1/", include("tracker.api.native.urls")),
    path("", include("dashboard.urls")),
]

# Errors without stack traces: JSON on the APIs, pages in the product's look elsewhere.
handler400 = "tracker.web.faults.bad_request"
handler403 = "tracker.web.faults.permission_denied"
handler404 = "tracker.web.faults.page_not_found"
handler500 = "tracker.web.faults.server_error"
