"""The registry's pages: /models/, /models/<name>/ and /models/<name>/versions/<n>/, and the
writers' forms on them (description, aliases, stage). Each form posts to its own view, which
calls one registry service and goes back to the page it came from."""

from django.core.exceptions import BadRequest
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from dashboard.templatetags.runtree import cut_middle_together
from registry import selectors, services
from registry.models import ModelVersion, RegisteredModel
from registry.validation import STAGES
from tracker.errors import InvalidParameterValue, TrackingError
from tracker.web.auth import may_write


@require_GET
def model_list(request):
    search = request.GET.get("q", "").strip()
    rows = selectors.models_overview(search=search)
    for row, parts in zip(rows, cut_middle_together([row.model.name for row in rows]), strict=True):
        row.model.name_parts = parts
    context = {"rows": rows, "search": search}
    return render(request, "dashboard/model_list.html", context)


@require_GET
def model_detail(request, name: str):
    try:
        page = selectors.model_page(name=name)
    except RegisteredModel.DoesNotExist:
        raise Http404(f"No registered model named {name}") from None
    context = {"page": page, "model": page.model, "stages": STAGES, "can_write": may_write(request.user)}
    return render(request, "dashboard/model_detail.html", context)


@require_GET
def model_version_detail(request, name: str, version: int):
    try:
        row = selectors.version_page(name=name, version=version)
    except ModelVersion.DoesNotExist:
        raise Http404(f"No version {version} of a registered model named {name}") from None
    context = {
        "row": row,
        "model": row.version.registered_model,
        "stages": STAGES,
        "can_write": may_write(request.user),
    }
    return render(request, "dashboard/model_version_detail.html", context)


def _model(name: str) -> RegisteredModel:
    try:
        return RegisteredModel.objects.get(name=name)
    except RegisteredModel.DoesNotExist:
        raise Http404(f"No registered model named {name}") from None


def _version(name: str, version: int) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("registered_model").get(registered_model__name=name, version=version)
    except ModelVersion.DoesNotExist:
        raise Http404(f"No version {version} of a registered model named {name}") from None


def _back(request, name: str):
    """To the version's page the form was on, else the model's page."""
    version = request.POST.get("back_to_version", "")
    if version.isdigit():
        return redirect(reverse("dashboard:model-version", args=[name, int(version)]))
    return redirect(reverse("dashboard:model", args=[name]))


def _refused(error: TrackingError) -> BadRequest:
    return BadRequest(error.message)


@require_POST
def model_edit_description(request, name: str):
    try:
        services.registered_model_update(model=_model(name), description=request.POST.get("description", ""))
    except InvalidParameterValue as error:
        raise _refused(error) from None
    return _back(request, name)


@require_POST
def model_set_alias(request, name: str):
    """Set (or move) an alias; with `delete`, remove it."""
    model = _model(name)
    alias = request.POST.get("alias", "").strip()
    try:
        if request.POST.get("delete"):
            services.registered_model_delete_alias(model=model, alias=alias)
        else:
            services.registered_model_set_alias(model=model, alias=alias, version=request.POST.get("version", ""))
    except TrackingError as error:  # a malformed or reserved alias, a version that is not there
        raise _refused(error) from None
    return _back(request, name)


@require_POST
def version_set_stage(request, name: str, version: int):
    try:
        services.model_version_transition_stage(
            version=_version(name, version),
            stage=request.POST.get("stage", ""),
            archive_existing_versions=request.POST.get("archive_existing_versions") == "1",
        )
    except InvalidParameterValue as error:
        raise _refused(error) from None
    return _back(request, name)


@require_POST
def version_edit_description(request, name: str, version: int):
    try:
        services.model_version_update(version=_version(name, version), description=request.POST.get("description", ""))
    except InvalidParameterValue as error:
        raise _refused(error) from None
    return _back(request, name)
