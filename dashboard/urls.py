from django.urls import path

from dashboard import artifact_views, compare_views, logged_model_views, registry_views, run_actions, views

app_name = "dashboard"
urlpatterns = [
    path("", views.experiment_list, name="experiments"),
    path("experiments/<int:experiment_id>/", views.experiment_tree, name="experiment"),
    path("experiments/<int:experiment_id>/live/", views.experiment_live, name="experiment-live"),
    path("experiments/<int:experiment_id>/goal/", views.experiment_goal, name="experiment-goal"),
    path("experiments/<int:experiment_id>/models/", logged_model_views.experiment_models, name="experiment-models"),
    path(
        "experiments/<int:experiment_id>/models/<str:model_id>/",
        logged_model_views.logged_model_detail,
        name="logged-model",
    ),
    path(
        "experiments/<int:experiment_id>/models/<str:model_id>/artifacts/",
        artifact_views.model_artifact_folder,
        name="model-artifacts",
    ),
    path(
        "experiments/<int:experiment_id>/models/<str:model_id>/artifacts/preview/",
        artifact_views.model_artifact_preview,
        name="model-artifact-preview",
    ),
    path(
        "experiments/<int:experiment_id>/models/<str:model_id>/artifacts/inline/",
        artifact_views.model_artifact_inline,
        name="model-artifact-inline",
    ),
    path("runs/<str:run_id>/", views.run_detail, name="run"),
    path("selection/", run_actions.runs_act, name="runs-act"),
    path("runs/<str:run_id>/edit/", run_actions.run_edit, name="run-edit"),
    path("runs/<str:run_id>/live/", views.run_live, name="run-live"),
    path("runs/<str:run_id>/history.json", views.run_history, name="run-history"),
    path("runs/<str:run_id>/children/", views.run_children, name="run-children"),
    path("runs/<str:run_id>/artifacts/", artifact_views.run_artifact_folder, name="run-artifacts"),
    path("runs/<str:run_id>/artifacts/preview/", artifact_views.run_artifact_preview, name="run-artifact-preview"),
    path("runs/<str:run_id>/artifacts/inline/", artifact_views.run_artifact_inline, name="run-artifact-inline"),
    path("compare/", compare_views.compare_runs, name="compare"),
    path("compare/history.json", compare_views.compare_history, name="compare-history"),
    path("compare/live/", compare_views.compare_live, name="compare-live"),
    path("models/", registry_views.model_list, name="models"),
    path("models/<str:name>/", registry_views.model_detail, name="model"),
    path("models/<str:name>/description/", registry_views.model_edit_description, name="model-description"),
    path("models/<str:name>/aliases/", registry_views.model_set_alias, name="model-alias"),
    path("models/<str:name>/versions/<int:version>/", registry_views.model_version_detail, name="model-version"),
    path(
        "models/<str:name>/versions/<int:version>/stage/", registry_views.version_set_stage, name="model-version-stage"
    ),
    path(
        "models/<str:name>/versions/<int:version>/description/",
        registry_views.version_edit_description,
        name="model-version-description",
    ),
]
