"""Logged models (MLflow 3's `log_model`) for the pages: an experiment's models with their
metrics, one model's page, and what a model's MLmodel file says (flavors, signature); and the
MLflow API's search_logged_models.

A model's metrics are the points logged with its `model_id`, per metric and dataset: the page
shows the latest of each (latest timestamp, then step, as search_logged_models orders by them).
"""

from dataclasses import dataclass, field

import yaml
from django.db.models import Count, F, OuterRef, QuerySet, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber

from tracker.filtering.logged_models import DatasetFilter, search_logged_models
from tracker.models import Experiment, LoggedModel, LoggedModelMetric, RunModelOutput
from tracker.selectors.artifacts import ArtifactFolder, ArtifactOwner, artifact_folder, model_artifacts
from tracker.selectors.schemas import signature_columns
from tracker.selectors.tree import SYSTEM_TAG_PREFIXES
from tracker.services import artifacts

# An MLmodel file is a few hundred bytes; anything past this is not one worth parsing on a page.
MAX_MLMODEL_BYTES = 64 * 1024
# Every model has this flavor (how to load it as a Python function): it says nothing.
GENERIC_FLAVOR = "python_function"
# The experiment's models page: rows per page, and metric columns at most (the first by key).
MODELS_PER_PAGE = 50
MAX_METRIC_COLUMNS = 12
MODEL_SORTS = {"created": "creation_time", "name": "name", "status": "status"}
DEFAULT_MODEL_SORT = "-created"


@dataclass(frozen=True)
class ModelFile:
    path: str
    is_dir: bool
    size: int | None
    download_url: str


@dataclass(frozen=True)
class ModelDescription:
    """What a model's MLmodel file says, for people: how to load it and what it takes."""

    flavors: list[str]  # e.g. ["sklearn 1.9.1"]
    inputs: list[str] = field(default_factory=list)  # its signature's, "name: type"
    outputs: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)  # inference params, with their defaults
    mlflow_version: str = ""
    size_bytes: int | None = None
    has_input_example: bool = False


def model_files(model: LoggedModel) -> tuple[list[ModelFile], ModelDescription | None]:
    """The model's top-level files (with download links) and its MLmodel file read (the run
    page's Models section); nothing if its files are not in this server's store (or not
    uploaded yet)."""
    owner = model_artifacts(model)
    folder = artifact_folder(owner)
    files = [ModelFile(item.path, item.is_dir, item.size, owner.download_prefix + item.path) for item in folder.items]
    return files, read_description(owner, folder)


def read_description(owner: ArtifactOwner, folder: ArtifactFolder) -> ModelDescription | None:
    """The MLmodel file among the model folder's items, read; None if there is none."""
    mlmodel = next((item for item in folder.items if item.path == "MLmodel" and not item.is_dir), None)
    if mlmodel is None or (mlmodel.size or 0) > MAX_MLMODEL_BYTES:
        return None
    with artifacts.artifact_storage().open(owner.storage_name("MLmodel"), "rb") as handle:
        return describe_mlmodel(handle.read(MAX_MLMODEL_BYTES))


def describe_mlmodel(text: bytes) -> ModelDescription | None:
    """An MLmodel file read: "sklearn 1.9.1" for each flavor but the generic one, the signature
    as "name: type" lines, the MLflow version that wrote it and the model's size; None if the
    file is not YAML of a mapping."""
    try:
        described = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(described, dict):
        return None
    signature = described.get("signature") if isinstance(described.get("signature"), dict) else {}
    size = described.get("model_size_bytes")
    return ModelDescription(
        flavors=_flavors(described.get("flavors")),
        inputs=signature_columns(signature.get("inputs")),
        outputs=signature_columns(signature.get("outputs")),
        params=signature_columns(signature.get("params")),
        mlflow_version=str(described.get("mlflow_version") or ""),
        size_bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
        has_input_example=isinstance(described.get("saved_input_example_info"), dict),
    )


def _flavors(flavors) -> list[str]:
    if not isinstance(flavors, dict):
        return []
    named = []
    for name, spec in flavors.items():
        if name == GENERIC_FLAVOR:
            continue
        version = spec.get(f"{name}_version") if isinstance(spec, dict) else None
        named.append(f"{name} {version}" if version else str(name))
    return named or [GENERIC_FLAVOR]


@dataclass(frozen=True)
class MetricColumn:
    key: str
    dataset_name: str | None  # None: logged without a dataset

    @property
    def sort_key(self) -> str:
        return f"metrics.{self.key}"


@dataclass(frozen=True)
class ModelMetric:
    """A model's latest point of one metric on one dataset, and how many points it has."""

    key: str
    dataset_name: str | None
    dataset_digest: str | None
    value: float
    step: int
    timestamp: int
    points: int | None  # None when not counted


def latest_model_metrics(model_pks: list[int], *, count_points: bool = False) -> dict[int, list[ModelMetric]]:
    """{model pk: its latest point per metric and dataset, by key}, in one query whatever the
    number of points: a window ranks each series' points newest first, read in that order from
    the index kept for it. With `count_points`, each series' size too (a second window, over
    every point: a model's page asks, a page of 50 checkpoints with thousands each does not)."""
    if not model_pks:
        return {}
    series = [F(name) for name in ("model", "key", "dataset_name", "dataset_digest")]
    newest_first = [F("timestamp").desc(), F("step").desc()]
    annotations = {"rank": Window(RowNumber(), partition_by=series, order_by=newest_first)}
    if count_points:
        annotations["points"] = Window(Count("pk"), partition_by=series)
    latest = (
        LoggedModelMetric.objects.filter(model__in=model_pks)
        .annotate(**annotations)
        .filter(rank=1)
        .order_by("model", "key", "dataset_name")
    )
    found: dict[int, list[ModelMetric]] = {}
    for point in latest:
        found.setdefault(point.model_id, []).append(
            ModelMetric(
                key=point.key,
                dataset_name=point.dataset_name,
                dataset_digest=point.dataset_digest,
                value=point.float_value,
                step=point.step,
                timestamp=point.timestamp,
                points=getattr(point, "points", None),
            )
        )
    return found


@dataclass
class LoggedModelPage:
    model: LoggedModel  # its experiment, source run and the run's parent at hand
    step: int | None  # the source run's step it was logged at
    metrics: list[ModelMetric]
    params: list[tuple[str, str]]
    user_tags: list[tuple[str, str]]
    system_tags: list[tuple[str, str]]
    folder: ArtifactFolder  # its top folder, listed once for the Files section and its MLmodel
    description: ModelDescription | None


def logged_model_page(*, experiment_id: int, model_id: str) -> LoggedModelPage:
    """One logged model of the experiment, for its page (five queries and the model's folder
    listed). Raises LoggedModel.DoesNotExist for an unknown or deleted model, or one of another
    experiment."""
    model = (
        LoggedModel.objects.active()
        .select_related("experiment", "source_run", "source_run__parent")
        .get(experiment_id=experiment_id, model_id=model_id)
    )
    step = None
    if model.source_run_id is not None:
        outputs = RunModelOutput.objects.filter(run_id=model.source_run_id, model=model)
        step = outputs.values_list("step", flat=True).first()
    tags = sorted(model.tags.values_list("key", "value"))
    owner = model_artifacts(model)
    folder = artifact_folder(owner)
    return LoggedModelPage(
        model=model,
        step=step,
        metrics=latest_model_metrics([model.pk], count_points=True).get(model.pk, []),
        params=sorted(model.params.values_list("key", "value")),
        user_tags=[tag for tag in tags if not tag[0].startswith(SYSTEM_TAG_PREFIXES)],
        system_tags=[tag for tag in tags if tag[0].startswith(SYSTEM_TAG_PREFIXES)],
        folder=folder,
        description=read_description(owner, folder),
    )


@dataclass
class ModelListRow:
    model: LoggedModel  # its source run at hand
    cells: list[ModelMetric | None]  # one per column


@dataclass
class ModelList:
    rows: list[ModelListRow]
    columns: list[MetricColumn]
    total: int
    page: int
    pages: int
    more_columns: int = 0  # metric columns left out past MAX_METRIC_COLUMNS


def with_model_count(experiments: QuerySet) -> QuerySet:
    """Experiments annotated with `model_count`, their logged models not deleted: the tree page's
    link to them, read in the experiment's own query."""
    counted = (
        LoggedModel.objects.active()
        .filter(experiment=OuterRef("pk"))
        .order_by()
        .values("experiment")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return experiments.annotate(model_count=Coalesce(Subquery(counted), 0))


def logged_models_search(
    *, experiment_ids: list[int], filter_text: str | None, datasets: list[DatasetFilter], order_by: list[dict]
) -> QuerySet:
    """The experiments' active models as MLflow's search_logged_models finds and orders them,
    with their source runs."""
    models = LoggedModel.objects.active().filter(experiment__in=experiment_ids).select_related("source_run")
    return search_logged_models(models, filter_text=filter_text, datasets=datasets, order_by=order_by)


def experiment_logged_models(
    *,
    experiment: Experiment,
    filter_text: str = "",
    sort: str = DEFAULT_MODEL_SORT,
    sort_dataset: str = "",
    page: int = 1,
) -> ModelList:
    """A page of the experiment's logged models, filtered with search_logged_models' language
    and sorted by an attribute or a metric's latest value (on `sort_dataset` if given), each with
    its latest metrics (three queries). Raises InvalidParameterValue for a filter that does not
    parse."""
    found = search_logged_models(
        LoggedModel.objects.active().filter(experiment=experiment),
        filter_text=filter_text,
        datasets=[],
        order_by=[_order_clause(sort, sort_dataset)],
    )
    # The total rides on the page's own query (a window over every match): a metric filter
    # evaluates its subquery per model once, not once for a count and again for the page.
    counted = found.select_related("source_run").annotate(total=Window(Count("pk")))
    page = max(page, 1)
    models = list(counted[(page - 1) * MODELS_PER_PAGE : page * MODELS_PER_PAGE])
    total = models[0].total if models else found.count()
    pages = max(1, -(-total // MODELS_PER_PAGE))
    if not models and page > pages:  # past the end (a stale link): the last page
        page = pages
        models = list(counted[(page - 1) * MODELS_PER_PAGE : page * MODELS_PER_PAGE])
    metrics = latest_model_metrics([model.pk for model in models])
    every_column = sorted(
        {MetricColumn(metric.key, metric.dataset_name) for shown in metrics.values() for metric in shown},
        key=lambda column: (column.key, column.dataset_name or ""),
    )
    columns = every_column[:MAX_METRIC_COLUMNS]
    rows = []
    for model in models:
        by_column = {MetricColumn(metric.key, metric.dataset_name): metric for metric in metrics.get(model.pk, [])}
        rows.append(ModelListRow(model=model, cells=[by_column.get(column) for column in columns]))
    return ModelList(
        rows=rows,
        columns=columns,
        total=total,
        page=page,
        pages=pages,
        more_columns=len(every_column) - len(columns),
    )


def parse_model_sort(sort: str) -> str:
    """The sort as asked if it names an attribute or a metric, else the default: a hand-edited
    URL still opens the page."""
    key = sort.removeprefix("-")
    if key in MODEL_SORTS or (key.startswith("metrics.") and len(key) > len("metrics.")):
        return sort
    return DEFAULT_MODEL_SORT


def _order_clause(sort: str, dataset_name: str) -> dict:
    """search_logged_models' order_by clause for the page's sort ("-created", "metrics.loss")."""
    key = sort.removeprefix("-")
    clause = {"field_name": MODEL_SORTS.get(key, key), "ascending": not sort.startswith("-")}
    if dataset_name and key.startswith("metrics."):
        clause["dataset_name"] = dataset_name
    return clause
