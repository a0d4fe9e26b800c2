"""MLflow's model registry RPCs, under api/2.0/mlflow/ and ajax-api/2.0/mlflow/ (config/urls.py
includes them before the MLflow catch-all)."""

from django.urls import path

from registry.api import mlflow_views as views

urlpatterns = [
    path("registered-models/create", views.create_registered_model),
    path("registered-models/get", views.get_registered_model),
    path("registered-models/rename", views.rename_registered_model),
    path("registered-models/update", views.update_registered_model),
    path("registered-models/delete", views.delete_registered_model),
    path("registered-models/search", views.search_registered_models),
    path("registered-models/get-latest-versions", views.get_latest_versions),
    path("registered-models/set-tag", views.set_registered_model_tag),
    path("registered-models/delete-tag", views.delete_registered_model_tag),
    path("registered-models/alias", views.registered_model_alias),
    path("model-versions/create", views.create_model_version),
    path("model-versions/get", views.get_model_version),
    path("model-versions/update", views.update_model_version),
    path("model-versions/delete", views.delete_model_version),
    path("model-versions/search", views.search_model_versions),
    path("model-versions/transition-stage", views.transition_model_version_stage),
    path("model-versions/set-tag", views.set_model_version_tag),
    path("model-versions/delete-tag", views.delete_model_version_tag),
    path("model-versions/get-download-uri", views.get_model_version_download_uri),
]
