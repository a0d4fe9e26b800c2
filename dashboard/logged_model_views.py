"""MLflow 3's logged models on their own pages: an experiment's models, with their latest
metrics as columns (/experiments/<id>/models/), and one model (…/models/<model_id>/): what it
is, how to load it, its signature, metrics, params, tags, registered versions and files."""

from dataclasses import dataclass

from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from dashboard.state import first_sort, parse_int
from registry.selectors import registrations_of_logged_models
from tracker.errors import InvalidParameterValue
from tracker.goals import goal_from_tag, goal_tag
from tracker.models import Experiment, LoggedModel
from tracker.selectors import logged_models


@require_GET
def experiment_models(request, experiment_id: int):
    experiment = get_object_or_404(Experiment.objects.prefetch_related("tags"), pk=experiment_id)
    filter_text = request.GET.get("filter", "").strip()
    sort = logged_models.parse_model_sort(request.GET.get("sort", logged_models.DEFAULT_MODEL_SORT))
    sort_dataset = request.GET.get("on", "")
    problem = ""
    try:
        listing = logged_models.experiment_logged_models(
            experiment=experiment,
            filter_text=filter_text,
            sort=sort,
            sort_dataset=sort_dataset,
            page=parse_int(request.GET.get("page"), 1, 1, 1_000_000),
        )
    except InvalidParameterValue as error:
        # A filter that does not parse is the viewer's mistake: the page, with the message, as a 400.
        problem = error.message
        listing = logged_models.ModelList(rows=[], columns=[], total=0, page=1, pages=1)
    registered = registrations_of_logged_models(row.model.model_id for row in listing.rows)
    tags = experiment.tag_dict()  # prefetched: each metric column's goal costs no query
    goals = {column.key: goal_from_tag(column.key, tags.get(goal_tag(column.key))) for column in listing.columns}
    context = {
        "experiment": experiment,
        "listing": listing,
        "headers": {key: _header(key, "", sort, sort_dataset) for key in ("name", "status", "created")},
        "metric_columns": [
            (column, _header(column.sort_key, column.dataset_name or "", sort, sort_dataset, goal=goals[column.key]))
            for column in listing.columns
        ],
        "rows": [(row, registered.get(row.model.model_id, [])) for row in listing.rows],
        "filter": filter_text,
        "sort": sort,
        "sort_dataset": sort_dataset,
        "problem": problem,
    }
    return render(request, "dashboard/experiment_models.html", context, status=400 if problem else 200)


@require_GET
def logged_model_detail(request, experiment_id: int, model_id: str):
    try:
        page = logged_models.logged_model_page(experiment_id=experiment_id, model_id=model_id)
    except LoggedModel.DoesNotExist:
        raise Http404(f"No logged model {model_id} in experiment {experiment_id}") from None
    context = {
        "page": page,
        "model": page.model,
        "registrations": registrations_of_logged_models([model_id]).get(model_id, []),
        "artifacts": page.folder,
    }
    return render(request, "dashboard/logged_model_detail.html", context)


@dataclass(frozen=True)
class SortHeader:
    """A column header's link: the sort a click asks for, and how the column sorts now."""

    sort: str
    on: str  # the dataset a metric column is on ("" for none)
    state: str  # "ascending", "descending" or "" (aria-sort)


def _header(key: str, on: str, sort: str, sort_dataset: str, goal: str | None = None) -> SortHeader:
    """A click on the sorted column turns it round; on another, sorts by that, best first."""
    if sort.removeprefix("-") == key and sort_dataset == on:
        descending = sort.startswith("-")
        return SortHeader(key if descending else f"-{key}", on, "descending" if descending else "ascending")
    return SortHeader(first_sort(key, goal), on, "")
