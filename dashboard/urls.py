from django.urls import path

from dashboard import compare_views, views

app_name = "dashboard"
urlpatterns = [
    path("", views.experiment_list, name="experiments"),
    path("experiments/<int:experiment_id>/", views.experiment_tree, name="experiment"),
    path("experiments/<int:experiment_id>/goal/", views.experiment_goal, name="experiment-goal"),
    path("runs/<str:run_id>/", views.run_detail, name="run"),
    path("runs/<str:run_id>/history.json", views.run_history, name="run-history"),
    path("runs/<str:run_id>/children/", views.run_children, name="run-children"),
    path("compare/", compare_views.compare_runs, name="compare"),
    path("compare/history.json", compare_views.compare_history, name="compare-history"),
    path("vendor/plotly-<str:version>.min.js", views.plotly_js, name="plotly-js"),
]
