"""MLflow's proxied artifact API, under api/2.0/mlflow-artifacts/ and ajax-api/2.0/mlflow-artifacts/
(see config/urls.py)."""

from django.urls import path

from tracker.api.mlflow import artifacts

urlpatterns = [
    path("artifacts", artifacts.artifact_listing),
    path("artifacts/<path:artifact_path>", artifacts.artifact),
    path("mpu/create/<path:artifact_path>", artifacts.multipart_upload),
    path("mpu/complete/<path:artifact_path>", artifacts.multipart_upload),
    path("mpu/abort/<path:artifact_path>", artifacts.multipart_upload),
]
