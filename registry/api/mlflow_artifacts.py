"""MLflow's `/model-versions/get-artifact?name=&version=&path=`: one file of a registered version
(mlflow's UI reads a version's MLmodel with it). Served as tracker serves a run's
`/get-artifact` (tracker/api/mlflow/artifacts.py): a streamed attachment with the sandboxing
headers of tracker/web/uploaded_content.py, so nothing uploaded runs on Runtree's origin, and
every refusal in MLflow's error JSON."""

from registry import services
from registry.models import ModelVersion
from tracker.api.mlflow.artifacts import artifact_endpoint, download_response
from tracker.errors import InvalidParameterValue


@artifact_endpoint("GET", "HEAD")
def get_model_version_artifact(request):
    if "path" not in request.GET:
        raise InvalidParameterValue("Missing value for required parameter 'path'.")
    version = ModelVersion.objects.get_by_number(request.GET.get("name"), request.GET.get("version"))
    return download_response(services.model_version_artifact_open(version=version, path=request.GET["path"]))
