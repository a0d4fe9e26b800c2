"""The run page's Datasets and Models sections: what a run used and what it produced.

Two queries whatever the run logged (its dataset inputs with their datasets; the logged models
it produced or used, with the step of each output), then the MLmodel file of each model, read
from the artifact store, for its flavors.
"""

import json
import posixpath
from dataclasses import dataclass, field

import yaml
from django.db.models import Exists, OuterRef, Q, Subquery

from tracker.constants import DATASET_CONTEXT_TAG, SOURCE_NAME_TAG
from tracker.errors import InvalidParameterValue
from tracker.models import LoggedModel, Run, RunDatasetInput, RunModelInput, RunModelOutput
from tracker.services import artifacts

# An MLmodel file is a few hundred bytes; anything past this is not one worth parsing on a page.
MAX_MLMODEL_BYTES = 64 * 1024
# Every model has this flavor (how to load it as a Python function): it says nothing.
GENERIC_FLAVOR = "python_function"


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


@dataclass(frozen=True)
class ModelFile:
    path: str
    is_dir: bool
    size: int | None
    download_url: str


@dataclass
class ModelRow:
    model: LoggedModel
    produced: bool  # logged by this run (its source run, or a run output)
    used: bool  # a model input of this run
    step: int | None
    flavors: list[str] = field(default_factory=list)  # e.g. ["sklearn 1.9.1"]
    files: list[ModelFile] = field(default_factory=list)


@dataclass(frozen=True)
class RunInputs:
    datasets: list[DatasetRow]
    models: list[ModelRow]


def run_inputs(run: Run) -> RunInputs:
    """The datasets and logged models of `run`, for its page."""
    return RunInputs(datasets=_datasets(run), models=_models(run))


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
                columns=_schema_columns(dataset.schema),
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


def _schema_columns(schema: str) -> list[str]:
    """The columns or tensors in MLflow's schema JSON, each as "name: type": a table's
    ({"mlflow_colspec": [{"name", "type"}]}, from pandas, Spark, ...) or an array's
    ({"mlflow_tensorspec": {"features": "<JSON list>", "targets": ...}}, from NumPy, where each
    part's list is itself JSON text and a tensor reads as "features: float64 [-1, 2]").
    [] for any other schema, which the page then shows as text."""
    try:
        described = json.loads(schema) if schema else {}
        if not isinstance(described, dict):
            return []
        if "mlflow_colspec" in described:
            return _spec_names(described["mlflow_colspec"], "")
        tensors = described.get("mlflow_tensorspec")
        if isinstance(tensors, dict):
            return [
                shown
                for part, spec in tensors.items()
                if isinstance(spec, str) and spec
                for shown in _spec_names(json.loads(spec), part)
            ]
        return []
    except (ValueError, TypeError, KeyError):
        return []


def _spec_names(specs: list, part: str) -> list[str]:
    """ "name: type" for each column spec, or "name: dtype [shape]" for each tensor spec; an
    unnamed tensor is named by its part of the dataset (features, targets)."""
    shown = []
    for spec in specs if isinstance(specs, list) else []:
        if not isinstance(spec, dict):
            continue
        tensor = spec.get("tensor-spec")
        if isinstance(tensor, dict):
            shape = tensor.get("shape")
            shape_text = f" [{', '.join(str(size) for size in shape)}]" if isinstance(shape, list) else ""
            shown.append(f"{spec.get('name') or part}: {tensor.get('dtype', 'tensor')}{shape_text}")
        elif "name" in spec:
            shown.append(f"{spec['name']}: {spec.get('type', '')}")
    return shown


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


def _models(run: Run) -> list[ModelRow]:
    outputs = RunModelOutput.objects.filter(run=run, model=OuterRef("pk"))
    inputs = RunModelInput.objects.filter(run=run, model=OuterRef("pk"))
    models = (
        LoggedModel.objects.active()
        .filter(Q(source_run=run) | Q(Exists(outputs)) | Q(Exists(inputs)))
        .annotate(output_step=Subquery(outputs.values("step")[:1]), used=Exists(inputs))
        .order_by("creation_time", "pk")
    )
    rows = []
    for model in models:
        row = ModelRow(
            model=model,
            produced=model.source_run_id == run.pk or model.output_step is not None,
            used=model.used,
            step=model.output_step,
        )
        row.files, row.flavors = _files_and_flavors(model)
        rows.append(row)
    return rows


def _files_and_flavors(model: LoggedModel) -> tuple[list[ModelFile], list[str]]:
    """The model's top-level files (with download links) and its flavors from its MLmodel file;
    nothing if its files are not in this server's store (or not uploaded yet)."""
    try:
        # The folder's storage name, from the model's own location: no lookup to check it.
        folder = artifacts.logged_model_artifact_path(model=model, path=None)
    except InvalidParameterValue:
        return [], []
    entries = artifacts.artifact_entries(name=folder)
    files = [
        ModelFile(
            path=entry.path,
            is_dir=entry.is_dir,
            size=entry.file_size,
            download_url=f"/api/2.0/mlflow-artifacts/artifacts/{folder}/{entry.path}",
        )
        for entry in entries
    ]
    mlmodel = next((entry for entry in entries if entry.path == "MLmodel" and not entry.is_dir), None)
    if mlmodel is None or (mlmodel.file_size or 0) > MAX_MLMODEL_BYTES:
        return files, []
    storage = artifacts.artifact_storage()
    with storage.open(posixpath.join(folder, "MLmodel"), "rb") as handle:
        return files, _flavors(handle.read(MAX_MLMODEL_BYTES))


def _flavors(text: bytes) -> list[str]:
    """ "sklearn 1.9.1" for each flavor but the generic one; [] if the file is not YAML."""
    try:
        described = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    flavors = described.get("flavors") if isinstance(described, dict) else None
    if not isinstance(flavors, dict):
        return []
    named = []
    for name, spec in flavors.items():
        if name == GENERIC_FLAVOR:
            continue
        version = spec.get(f"{name}_version") if isinstance(spec, dict) else None
        named.append(f"{name} {version}" if version else str(name))
    return named or [GENERIC_FLAVOR]
