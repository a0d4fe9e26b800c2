"""The run page's Datasets and Models sections: what a run used and what it produced.

Three queries whatever the run logged (its dataset inputs with their datasets; the logged models
it produced or used, with the step of each output; their latest metrics), then the MLmodel file
of each model, read from the artifact store, for its flavors.
"""

import json
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q, Subquery

from tracker.constants import DATASET_CONTEXT_TAG, SOURCE_NAME_TAG
from tracker.models import LoggedModel, Run, RunDatasetInput, RunModelInput, RunModelOutput
from tracker.selectors.logged_models import ModelFile, ModelMetric, latest_model_metrics, model_files
from tracker.selectors.schemas import schema_columns


@dataclass(frozen=True)
class DatasetRow:
    name: str
    digest: str
    context: str  # mlflow.data.context: training, validation, ... ("" if not given)
    source_type: str
    source: str  # MLflow's JSON description of where it came from
    source_text: str  # its URI or path when it names one, else the description as given
    columns: list[str]  # from its schema, when that is MLflow's column or tensor schema JSON
    schema: str
    profile: str  # its size as MLflow profiled it (rows, elements, shapes), "" if not given


@dataclass
class ModelRow:
    model: LoggedModel
    produced: bool  # logged by this run (its source run, or a run output)
    used: bool  # a model input of this run
    step: int | None
    flavors: list[str] = field(default_factory=list)  # e.g. ["sklearn 1.9.1"]
    files: list[ModelFile] = field(default_factory=list)
    metrics: list[ModelMetric] = field(default_factory=list)  # its latest per metric and dataset


@dataclass(frozen=True)
class RunInputs:
    datasets: list[DatasetRow]
    models: list[ModelRow]
    models_total: int = 0  # more than shown when the run logged more than MAX_MODELS_SHOWN


# A run that checkpoints logs a model per epoch: its page shows the newest this many, each with
# its folder listed and its MLmodel read from the store (a storage round trip or two apiece),
# and links to the experiment's models page for all of them.
MAX_MODELS_SHOWN = 12


def run_inputs(run: Run) -> RunInputs:
    """The datasets and logged models of `run`, for its page."""
    models, total = _models(run)
    return RunInputs(datasets=_datasets(run), models=models, models_total=total)


def _datasets(run: Run) -> list[DatasetRow]:
    rows = []
    for given in RunDatasetInput.objects.filter(run=run).select_related("dataset").order_by("pk"):
        dataset = given.dataset
        tags = {tag.get("key"): tag.get("value") for tag in given.tags if isinstance(tag, dict)}
        rows.append(
            DatasetRow(
                name=dataset.name,
                digest=dataset.digest,
                context=tags.get(DATASET_CONTEXT_TAG) or "",
                source_type=dataset.source_type,
                source=dataset.source,
                source_text=_source_text(dataset.source),
                columns=schema_columns(dataset.schema),
                schema=dataset.schema,
                profile=_profile_text(dataset.profile),
            )
        )
    return rows


def _source_text(source: str) -> str:
    """The URI or path in MLflow's source JSON ({"uri": "s3://..."}, {"url": ...}, {"path": ...}),
    or the script of a dataset made in code (its source is the logging run's tags)."""
    try:
        described = json.loads(source) if source else None
    except ValueError:
        return source
    if isinstance(described, dict):
        for key in ("uri", "url", "path", "file_path", "table_name"):
            if isinstance(described.get(key), str):
                return described[key]
        tags = described.get("tags")
        script = tags.get(SOURCE_NAME_TAG) if isinstance(tags, dict) else None
        if isinstance(script, str) and script:
            return script
    return source


def _profile_text(profile: str) -> str:
    """MLflow's dataset profile ({"num_rows": 143, "num_elements": 4433}, or a NumPy dataset's
    shapes and sizes) as "num_rows 143 · num_elements 4433"; "" when there is none."""
    try:
        described = json.loads(profile) if profile else None
    except ValueError:
        return ""
    if not isinstance(described, dict):
        return ""
    return " · ".join(f"{key} {value}" for key, value in described.items() if not isinstance(value, dict))


def _models(run: Run) -> tuple[list[ModelRow], int]:
    """The newest MAX_MODELS_SHOWN models the run logged or used, and how many there are (a
    count only when there are more)."""
    outputs = RunModelOutput.objects.filter(run=run, model=OuterRef("pk"))
    inputs = RunModelInput.objects.filter(run=run, model=OuterRef("pk"))
    found = (
        LoggedModel.objects.active()
        .filter(Q(source_run=run) | Q(Exists(outputs)) | Q(Exists(inputs)))
        .annotate(output_step=Subquery(outputs.values("step")[:1]), used=Exists(inputs))
        .order_by("-creation_time", "-pk")
    )
    models = list(found[: MAX_MODELS_SHOWN + 1])
    total = found.count() if len(models) > MAX_MODELS_SHOWN else len(models)
    models = models[:MAX_MODELS_SHOWN]
    metrics = latest_model_metrics([model.pk for model in models])
    rows = []
    for model in models:
        row = ModelRow(
            model=model,
            produced=model.source_run_id == run.pk or model.output_step is not None,
            used=model.used,
            step=model.output_step,
            metrics=metrics.get(model.pk, []),
        )
        row.files, description = model_files(model)
        row.flavors = description.flavors if description else []
        rows.append(row)
    return rows, total
