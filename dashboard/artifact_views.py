"""The Artifacts sections of the run page and the logged model page: a folder's rows and a
file's preview (partials fetched when opened), and the inline URL that images and the HTML
preview load from.

Nothing uploaded runs on Runtree's origin: the inline URL serves raster images, SVG (shown only
as <img>) and HTML (shown only in <iframe sandbox>), each with tracker/web/uploaded_content.py's
headers (`nosniff`, a CSP whose `sandbox` gives the document a unique origin and no script even
when opened on its own).
"""

import posixpath

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from tracker.errors import TrackingError
from tracker.models import LoggedModel, Run
from tracker.selectors import artifacts as selectors
from tracker.web.uploaded_content import sandboxed


def _run(run_id: str) -> selectors.ArtifactOwner:
    return selectors.run_artifacts(get_object_or_404(Run, run_id=run_id))


def _model(experiment_id: int, model_id: str) -> selectors.ArtifactOwner:
    found = LoggedModel.objects.active().filter(experiment_id=experiment_id, model_id=model_id)
    return selectors.model_artifacts(get_object_or_404(found))


def _folder(request, owner: selectors.ArtifactOwner):
    folder = selectors.artifact_folder(owner, path=request.GET.get("path", ""))
    return render(request, "partials/artifact_folder.html", {"folder": folder})


def _preview(request, owner: selectors.ArtifactOwner, inline_url: str):
    preview = selectors.artifact_preview(owner, path=request.GET.get("path", ""))
    context = {"preview": preview, "inline_url": inline_url, "preview_lines": selectors.PREVIEW_LINES}
    return render(request, "partials/artifact_preview.html", context)


def _inline(request, owner: selectors.ArtifactOwner):
    try:
        download, content_type = selectors.artifact_inline(owner, path=request.GET.get("path", ""))
    except TrackingError as error:
        raise Http404(error.message) from None
    response = FileResponse(download.file, content_type=content_type)
    response["Content-Length"] = str(download.size)
    response["Content-Disposition"] = content_disposition_header(False, posixpath.basename(download.file_name))
    return sandboxed(response, inline=True)


@require_GET
def run_artifact_folder(request, run_id: str):
    return _folder(request, _run(run_id))


@require_GET
def run_artifact_preview(request, run_id: str):
    owner = _run(run_id)
    return _preview(request, owner, reverse("dashboard:run-artifact-inline", args=[run_id]))


@require_GET
@xframe_options_sameorigin  # the HTML preview's iframe; everything else on the site is DENY
def run_artifact_inline(request, run_id: str):
    return _inline(request, _run(run_id))


@require_GET
def model_artifact_folder(request, experiment_id: int, model_id: str):
    return _folder(request, _model(experiment_id, model_id))


@require_GET
def model_artifact_preview(request, experiment_id: int, model_id: str):
    owner = _model(experiment_id, model_id)
    return _preview(request, owner, reverse("dashboard:model-artifact-inline", args=[experiment_id, model_id]))


@require_GET
@xframe_options_sameorigin  # as for a run's
def model_artifact_inline(request, experiment_id: int, model_id: str):
    return _inline(request, _model(experiment_id, model_id))
