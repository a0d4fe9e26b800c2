"""MLflow's tracking RPCs, under api/2.0/mlflow/ and ajax-api/2.0/mlflow/ (see config/urls.py)."""

from django.urls import path

from tracker.api.mlflow import artifacts, views
from tracker.api.mlflow import logged_models as models_views

urlpatterns = [
    path("experiments/create", views.create_experiment),
    path("experiments/get", views.get_experiment),
    path("experiments/get-by-name", views.get_experiment_by_name),
    path("experiments/search", views.search_experiments),
    path("experiments/update", views.update_experiment),
    path("experiments/delete", views.delete_experiment),
    path("experiments/restore", views.restore_experiment),
    path("experiments/set-experiment-tag", views.set_experiment_tag),
    path("experiments/delete-experiment-tag", views.delete_experiment_tag),
    path("runs/create", views.create_run),
    path("runs/get", views.get_run),
    path("runs/update", views.update_run),
    path("runs/delete", views.delete_run),
    path("runs/restore", views.restore_run),
    path("runs/search", views.search_runs),
    path("runs/log-batch", views.log_batch),
    path("runs/log-metric", views.log_metric),
    path("runs/log-parameter", views.log_param),
    path("runs/set-tag", views.set_tag),
    path("runs/delete-tag", views.delete_tag),
    path("metrics/get-history", views.get_metric_history),
    path("artifacts/list", artifacts.list_artifacts),
    # MLflow 3: datasets and logged models (log_input, log_model, autolog, models:/ URIs).
    path("runs/log-inputs", models_views.log_inputs),
    path("runs/outputs", models_views.log_outputs),
    path("logged-models", models_views.create_logged_model),
    path("logged-models/search", models_views.search_logged_models_view),  # before <model_id>
    path("logged-models/<str:model_id>", models_views.logged_model),
    path("logged-models/<str:model_id>/params", models_views.log_logged_model_params),
    path("logged-models/<str:model_id>/tags", models_views.set_logged_model_tags),
    path("logged-models/<str:model_id>/artifacts/directories", models_views.list_logged_model_artifacts),
    # A tag key may hold slashes.
    path("logged-models/<str:model_id>/tags/<path:tag_key>", models_views.delete_logged_model_tag),
]
