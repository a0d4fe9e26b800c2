"""Reads for the registry's pages (dashboard/registry_views.py) and the run page's
"registered as" line: each returns dataclasses in a fixed number of queries, whatever the
number of models or versions."""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, Prefetch

from registry.models import ModelVersion, RegisteredModel, RegisteredModelAlias
from registry.validation import STAGES
from tracker.models import LatestMetric, LoggedModel, Run
from tracker.selectors.logged_models import latest_model_metrics


@dataclass
class ModelRow:
    model: RegisteredModel
    version_count: int
    latest_by_stage: list[tuple[str, int]]  # (stage, version), in STAGES order
    aliases: list[tuple[str, int]]  # (alias, version)


def models_overview(*, search: str = "") -> list[ModelRow]:
    """The /models/ table: every model (whose name contains `search`), its latest version per
    stage and its aliases. Three queries: models with their version counts, aliases, latest versions."""
    models = (
        RegisteredModel.objects.filter(name__icontains=search.strip())
        .annotate(version_count=Count("versions"))
        .prefetch_related(
            Prefetch("aliases", queryset=RegisteredModelAlias.objects.select_related("version")),
            Prefetch("versions", queryset=ModelVersion.objects.latest_per_stage(), to_attr="latest_versions"),
        )
        .order_by("name")
    )
    return [
        ModelRow(
            model=model,
            version_count=model.version_count,
            latest_by_stage=sorted(
                ((version.stage, version.version) for version in model.latest_versions),
                key=lambda pair: STAGES.index(pair[0]),
            ),
            aliases=[(alias.alias, alias.version.version) for alias in model.aliases.all()],
        )
        for model in models
    ]


@dataclass
class VersionRow:
    version: ModelVersion
    aliases: list[str]
    run: Run | None  # None: registered without a run, or its run was removed for good
    parent: Run | None  # the run's parent (its sweep), if any
    metrics: dict[str, float] = field(default_factory=dict)  # NaN for a NaN (stored NULL)
    cells: list[tuple[str, float | None]] = field(default_factory=list)  # the page's metric columns; None: not logged
    logged_model_gone: bool = False  # made from a logged model that has been deleted since
    logged_model_experiment_id: int | None = None  # where its logged model's page is, if it has one
    metrics_of_model: bool = False  # its metrics are its logged model's (per dataset), not its run's

    @property
    def run_gone(self) -> bool:
        return self.version.run_gone

    @property
    def source_gone(self) -> bool:
        return self.run_gone or self.logged_model_gone


@dataclass
class ModelPage:
    model: RegisteredModel
    tags: list[tuple[str, str]]
    versions: list[VersionRow]
    metric_keys: list[str]


def _version_rows(versions: list[ModelVersion]) -> tuple[list[VersionRow], list[str]]:
    """Rows for versions loaded with versions_for_page(): their metrics, and, if any came from
    logged models, which of those still exist (at most three more queries). A version made from
    an MLflow 3 logged model that has metrics of its own shows those, per dataset ("accuracy ·
    test"): its run's latest values would mix the model's train and test scores into one. Any
    other version shows its run's latest metrics."""
    model_ids = {version.model_id for version in versions if version.model_id}
    alive = {}
    if model_ids:
        found = LoggedModel.objects.active().filter(model_id__in=model_ids).values_list("model_id", "pk", "experiment")
        alive = {model_id: (pk, experiment) for model_id, pk, experiment in found}
    model_metrics = latest_model_metrics([pk for pk, _ in alive.values()])
    run_pks = {version.source_run_id for version in versions if version.source_run_id}
    run_metrics: dict[int, dict[str, float]] = defaultdict(dict)
    for metric in LatestMetric.objects.filter(run__in=run_pks).only("run_id", "key", "value"):
        run_metrics[metric.run_id][metric.key] = metric.float_value
    rows = []
    for version in versions:
        model_pk, experiment_id = alive.get(version.model_id, (None, None))
        own = model_metrics.get(model_pk, [])
        rows.append(
            VersionRow(
                version=version,
                aliases=[alias.alias for alias in version.aliases.all()],
                run=version.source_run,
                parent=version.source_run.parent if version.source_run else None,
                metrics=(
                    {_labelled(metric.key, metric.dataset_name): metric.value for metric in own}
                    if own
                    else run_metrics.get(version.source_run_id, {})
                ),
                metrics_of_model=bool(own),
                logged_model_gone=bool(version.model_id) and version.model_id not in alive,
                logged_model_experiment_id=experiment_id,
            )
        )
    keys = sorted({key for row in rows for key in row.metrics})
    for row in rows:
        row.cells = [(key, row.metrics.get(key)) for key in keys]
    return rows, keys


def _labelled(key: str, dataset_name: str | None) -> str:
    return f"{key} · {dataset_name}" if dataset_name else key


def versions_for_page(queryset=None):
    """Versions with their run, the run's parent, aliases and tags at hand (three queries)."""
    queryset = ModelVersion.objects.all() if queryset is None else queryset
    return queryset.select_related("registered_model", "source_run", "source_run__parent").prefetch_related(
        "aliases", "tags"
    )


def model_page(*, name: str) -> ModelPage:
    """The /models/<name>/ page: the model, its tags and every version with its run, the run's
    sweep and its metrics. Five queries whatever the number of versions. Raises
    RegisteredModel.DoesNotExist."""
    model = RegisteredModel.objects.get(name=name)
    versions = list(versions_for_page(ModelVersion.objects.filter(registered_model=model)).order_by("-version"))
    rows, keys = _version_rows(versions)
    tags = list(model.tags.values_list("key", "value"))
    return ModelPage(model=model, tags=tags, versions=rows, metric_keys=keys)


def version_page(*, name: str, version: int) -> VersionRow:
    """One version with its run, sweep and metrics. Raises ModelVersion.DoesNotExist."""
    found = versions_for_page(ModelVersion.objects.filter(registered_model__name=name, version=version)).get()
    rows, _ = _version_rows([found])
    return rows[0]


@dataclass(frozen=True)
class Registration:
    name: str
    version: int
    aliases: list[str]


def registrations_of(run: Run) -> list[Registration]:
    """ "registered as <name> v<n> (@alias)" for each version made from this run (two queries)."""
    return [
        Registration(version.registered_model.name, version.version, [alias.alias for alias in version.aliases.all()])
        for version in ModelVersion.objects.from_runs([run.pk])
    ]


def registrations_of_logged_models(model_ids) -> dict[str, list[Registration]]:
    """{model_id: the versions made from that logged model}, for those that have some (two
    queries: the versions with their models, their aliases)."""
    found: dict[str, list[Registration]] = defaultdict(list)
    for version in ModelVersion.objects.from_logged_models(list(model_ids)):
        aliases = [alias.alias for alias in version.aliases.all()]
        found[version.model_id].append(Registration(version.registered_model.name, version.version, aliases))
    return dict(found)


def registered_labels(run_pks) -> dict[int, str]:
    """{run pk: "fraud v3, churn v1"} for those of these runs that have registered versions: the
    tree's badge (one query)."""
    labels: dict[int, list[str]] = defaultdict(list)
    rows = (
        ModelVersion.objects.filter(source_run__in=list(run_pks))
        .order_by("registered_model__name", "version")
        .values_list("source_run", "registered_model__name", "version")
    )
    for run_pk, name, version in rows:
        labels[run_pk].append(f"{name} v{version}")
    return {run_pk: ", ".join(names) for run_pk, names in labels.items()}
