"""The run page's Artifacts section: a folder's rows and a file's preview (partials fetched when
opened), and the inline URL that images and the HTML preview load from.

Nothing uploaded runs on Runtree's origin: the inline URL serves raster images, SVG (shown only
as <img>) and HTML (shown only in <iframe sandbox>), each with tracker/web/uploaded_content.py's
headers (`nosniff`, a CSP whose `sandbox` gives the document a unique origin and no script even
when opened on its own).
"""

import posixpath

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render
from django.utils.http import content_disposition_header
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from tracker.errors import TrackingError
from tracker.models import Run
from tracker.selectors import artifacts as selectors
from tracker.web.uploaded_content import sandboxed


@require_GET
def run_artifact_folder(request, run_id: str):
    run = get_object_or_404(Run, run_id=run_id)
    folder = selectors.run_artifact_folder(run=run, path=request.GET.get("path", ""))
    return render(request, "partials/artifact_folder.html", {"folder": folder})


@require_GET
def run_artifact_preview(request, run_id: str):
    run = get_object_or_404(Run, run_id=run_id)
    preview = selectors.run_artifact_preview(run=run, path=request.GET.get("path", ""))
    context = {"preview": preview, "run_id": run.run_id, "preview_lines": selectors.PREVIEW_LINES}
    return render(request, "partials/artifact_preview.html", context)


@require_GET
@xframe_options_sameorigin  # the HTML preview's iframe; everything else on the site is DENY
def run_artifact_inline(request, run_id: str):
    run = get_object_or_404(Run, run_id=run_id)
    try:
        download, content_type = selectors.run_artifact_inline(run=run, path=request.GET.get("path", ""))
    except TrackingError as error:
        raise Http404(error.message) from None
    response = FileResponse(download.file, content_type=content_type)
    response["Content-Length"] = str(download.size)
    response["Content-Disposition"] = content_disposition_header(False, posixpath.basename(download.file_name))
    return sandboxed(response, inline=True)
