"""MLflow's proxied artifact API (what `mlflow server --serve-artifacts` answers), over
tracker/services/artifacts.py:

- `PUT|GET|DELETE /api/2.0/mlflow-artifacts/artifacts/<path>`: upload, download, delete;
- `GET /api/2.0/mlflow-artifacts/artifacts?path=<folder>`: `{"files": [{path, is_dir, file_size}]}`;
- `POST /api/2.0/mlflow-artifacts/mpu/{create,complete,abort}/<path>`: multipart uploads are not
  offered, refused as MLflow refuses them, so the client falls back to one PUT;
- `GET /api/2.0/mlflow/artifacts/list?run_id=&path=` and `GET /get-artifact?run_id=&path=`: the
  same by run.

Uploads and downloads stream: the body is never read into memory (Django's request size limit
applies to `request.body`, which these views never touch), and downloads are file responses.
A download is always an attachment with tracker/web/uploaded_content.py's headers (`nosniff`, a
sandboxing CSP), so an uploaded HTML or SVG file never runs as a page of Runtree's origin.
"""

import functools

from django.http import FileResponse
from django.views.decorators.csrf import csrf_exempt

from tracker.api.mlflow.json import Fields, error_response
from tracker.api.mlflow.views import rpc
from tracker.errors import InvalidParameterValue, NotImplementedByServer, TrackingError
from tracker.selectors.runs import find_run
from tracker.services import artifacts
from tracker.web.json_errors import error_body, json_response
from tracker.web.uploaded_content import sandboxed

# mlflow/exceptions.py: the client matches this text to fall back to a single PUT.
MULTIPART_UNSUPPORTED = "Multipart upload is not supported for the current artifact repository"


def artifact_endpoint(*methods: str):
    """An artifact view: other methods get 405, a TrackingError becomes MLflow's error JSON.
    CSRF-exempt like every MLflow endpoint (with RUNTREE_AUTH=required, tracker/web/auth.py checks
    credentials and, for a browser session's write, the CSRF token)."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def endpoint(request, *args, **kwargs):
            if request.method not in methods:
                response = error_body(
                    "ENDPOINT_NOT_FOUND",
                    f"{request.path} accepts {' or '.join(methods)}, not {request.method}.",
                    status=405,
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except TrackingError as error:
                return error_response(error)

        return endpoint

    return decorate


@artifact_endpoint("GET", "HEAD", "PUT", "DELETE")
def artifact(request, artifact_path: str):
    if request.method == "PUT":
        body, content_length = _request_body(request)
        artifacts.artifact_put(path=artifact_path, body=body, content_length=content_length)
        return json_response({})
    if request.method == "DELETE":
        artifacts.artifact_delete(path=artifact_path)
        return json_response({})
    return download_response(artifacts.artifact_open(path=artifact_path))


@artifact_endpoint("GET")
def artifact_listing(request):
    path = request.GET.get("path", "")
    return json_response(_files(artifacts.artifact_list(path=path)))


@artifact_endpoint("POST")
def multipart_upload(request, artifact_path: str):
    raise NotImplementedByServer(MULTIPART_UNSUPPORTED)


@rpc("GET")
def list_artifacts(fields: Fields) -> dict:
    run = find_run(fields.run_id())
    relative = fields.string("path")
    listed = artifacts.artifact_list(path=artifacts.run_artifact_path(run=run, path=relative))
    # MLflow lists by run with paths from the run's root, not from the folder listed.
    prefix = f"{relative.rstrip('/')}/" if relative else ""
    entries = [artifacts.ArtifactEntry(prefix + entry.path, entry.is_dir, entry.file_size) for entry in listed]
    return {"root_uri": run.artifact_uri, **_files(entries)}


@artifact_endpoint("GET", "HEAD")
def get_artifact(request):
    """MLflow's `/get-artifact?run_id=&path=` (its UI's downloads)."""
    run_id = request.GET.get("run_id") or request.GET.get("run_uuid")
    if not run_id or "path" not in request.GET:
        raise InvalidParameterValue("get-artifact needs run_id and path.")
    run = find_run(run_id)
    path = artifacts.run_artifact_path(run=run, path=request.GET["path"])
    return download_response(artifacts.artifact_open(path=path))


def download_response(download: artifacts.ArtifactDownload) -> FileResponse:
    response = FileResponse(download.file, as_attachment=True, filename=download.file_name)
    # FileResponse's default 4 KiB pieces cost a Python round per 4 KiB: 256k of them for 1 GiB.
    response.block_size = artifacts.CHUNK_BYTES
    response["Content-Length"] = str(download.size)
    return sandboxed(response)


def _files(entries: list[artifacts.ArtifactEntry]) -> dict:
    # MLflow's JSON (protobuf): a folder has no file_size; an empty listing has no "files".
    files = [
        {"path": entry.path, "is_dir": entry.is_dir} | ({} if entry.is_dir else {"file_size": entry.file_size})
        for entry in entries
    ]
    return {"files": files} if files else {}


def _request_body(request):
    """The stream to read an upload from, and the length it announced (None if chunked)."""
    length = request.META.get("CONTENT_LENGTH")
    if length:
        try:
            content_length = int(length)
        except ValueError:
            raise InvalidParameterValue(f"Invalid Content-Length {length!r}.") from None
        if content_length < 0:
            raise InvalidParameterValue(f"Invalid Content-Length {length!r}.")
        # Django's request stream stops at the announced length.
        return request, content_length
    chunked = request.META.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    if chunked:
        if not request.META.get("wsgi.input_terminated"):
            raise InvalidParameterValue("A chunked upload needs a server that ends its input; send a Content-Length.")
        # The server has decoded the chunks and ends the input at the body's end (PEP 3333's
        # extension); Django's stream would read nothing, since it knows no length.
        return request.META["wsgi.input"], None
    return request, 0  # no length and not chunked: an empty body
