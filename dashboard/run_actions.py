"""Acting on runs from the pages: the tree's selection (tag, untag, delete, restore) and the run
page's name and description. Each view parses the form, calls one service in
tracker/services/run_actions.py, and goes back to the page it came from. Viewers never get
here: with RUNTREE_AUTH=required the access control refuses their POSTs (and a forged one,
without the CSRF token) before a view runs."""

from django.core.exceptions import BadRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from dashboard.state import parse_ids
from tracker.errors import TrackingError
from tracker.models import ACTIVE, DELETED, Run
from tracker.services import run_actions


def _back(request, fallback: str):
    """Back to `next` when it is a page of this site (anyone can write a form's fields)."""
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
        next_url = fallback
    return redirect(next_url)


@require_POST
def runs_act(request):
    """Tag, untag, delete or restore the runs a viewer selected in the tree."""
    runs = list(Run.objects.filter(run_id__in=parse_ids(request.POST.get("runs", ""))).select_related("experiment"))
    if not runs:
        raise BadRequest("Select some runs first.")
    action, key = request.POST.get("action", ""), request.POST.get("key", "").strip()
    try:
        if action == "tag" and key:
            run_actions.runs_tag(runs=runs, key=key, value=request.POST.get("value", ""))
        elif action == "untag" and key:
            run_actions.runs_untag(runs=runs, key=key)
        elif action in ("delete", "restore"):
            run_actions.runs_set_lifecycle(runs=runs, stage=DELETED if action == "delete" else ACTIVE)
        else:
            raise BadRequest("Choose an action: tag or untag (with a key), delete or restore.")
    except TrackingError as error:  # a malformed key, a reserved tag, a deleted experiment
        raise BadRequest(str(error)) from None
    return _back(request, reverse("dashboard:experiment", args=[runs[0].experiment_id]))


@require_POST
def run_edit(request, run_id: str):
    """Rename a run and write its description (Markdown, the `mlflow.note.content` tag)."""
    run = get_object_or_404(Run, run_id=run_id)
    try:
        run_actions.run_rename_and_describe(
            run=run, name=request.POST.get("name", ""), description=request.POST.get("description", "")
        )
    except TrackingError as error:
        raise BadRequest(str(error)) from None
    return redirect(reverse("dashboard:run", args=[run.run_id]))
