"""Write services for datasets and the other inputs of a run (`mlflow.log_input`,
MLflow's log-inputs): a dataset is stored once per experiment, name and digest, and each run
that used it gets an input row with the input's tags (`mlflow.data.context`: training, ...).

Keyword-only and atomic, with MLflow's limits (mlflow/utils/validation.py) and its rules
(mlflow/store/tracking/sqlalchemy_store.py: the first of two inputs with one name and digest
wins; logging an input again changes nothing).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction

from tracker.constants import DATASET_CONTEXT_TAG
from tracker.errors import InvalidParameterValue, ResourceDoesNotExist
from tracker.models import Dataset, LoggedModel, Run, RunDatasetInput, RunModelInput
from tracker.services.validation import KeyValue, check_active

# MLflow's limits.
MAX_DATASET_NAME = 500
MAX_DATASET_DIGEST = 36
MAX_DATASET_SOURCE = 65_535
MAX_DATASET_SCHEMA = 1_048_575
MAX_DATASET_PROFILE = 16_777_215
MAX_INPUT_TAG_KEY = 255
MAX_INPUT_TAG_VALUE = 500
MAX_DATASETS_PER_BATCH = 1000
MAX_SOURCE_TYPE = Dataset._meta.get_field("source_type").max_length


@dataclass(frozen=True)
class DatasetInput:
    name: str
    digest: str
    source_type: str
    source: str
    schema: str = ""
    profile: str = ""
    tags: list[KeyValue] = field(default_factory=list)


def _check_length(value, what: str, limit: int, *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise InvalidParameterValue(f"Dataset {what} cannot be empty")
        return ""
    if not isinstance(value, str):
        raise InvalidParameterValue(f"Dataset {what} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidParameterValue(f"Dataset {what} is {len(value)} characters long; the limit is {limit}")
    return value


def check_dataset_input(dataset: DatasetInput) -> DatasetInput:
    """`dataset` within MLflow's limits, its tags' values as strings; InvalidParameterValue if not."""
    tags = []
    for tag in dataset.tags:
        if not isinstance(tag.key, str) or not tag.key:
            raise InvalidParameterValue("Input tag key cannot be empty")
        if len(tag.key) > MAX_INPUT_TAG_KEY:
            raise InvalidParameterValue(f"Input tag key is {len(tag.key)} characters; the limit is {MAX_INPUT_TAG_KEY}")
        value = tag.value or ""
        if len(value) > MAX_INPUT_TAG_VALUE:
            raise InvalidParameterValue(
                f"Input tag '{tag.key}' value is {len(value)} characters; the limit is {MAX_INPUT_TAG_VALUE}"
            )
        tags.append(KeyValue(tag.key, value))
    return DatasetInput(
        name=_check_length(dataset.name, "name", MAX_DATASET_NAME),
        digest=_check_length(dataset.digest, "digest", MAX_DATASET_DIGEST),
        source_type=_check_length(dataset.source_type, "source_type", MAX_SOURCE_TYPE),
        source=_check_length(dataset.source, "source", MAX_DATASET_SOURCE, required=False),
        schema=_check_length(dataset.schema, "schema", MAX_DATASET_SCHEMA, required=False),
        profile=_check_length(dataset.profile, "profile", MAX_DATASET_PROFILE, required=False),
        tags=tags,
    )


def run_log_inputs(*, run: Run, datasets: Iterable[DatasetInput] = (), model_ids: Iterable[str] = ()) -> None:
    """Record the datasets and logged models a run used."""
    datasets = [check_dataset_input(d) for d in datasets]
    if len(datasets) > MAX_DATASETS_PER_BATCH:
        raise InvalidParameterValue(f"A request may log at most {MAX_DATASETS_PER_BATCH} datasets")
    model_ids = set(model_ids)
    with transaction.atomic():
        check_active(run)
        record_dataset_inputs(experiment_id=run.experiment_id, inputs_by_run_pk={run.pk: datasets})
        if model_ids:
            models = {m.model_id: m for m in LoggedModel.objects.active().filter(model_id__in=model_ids)}
            missing = sorted(model_ids - set(models))
            if missing:
                raise ResourceDoesNotExist(f"Logged model with ID '{missing[0]}' not found.")
            RunModelInput.objects.bulk_create(
                [RunModelInput(run=run, model=model) for model in models.values()], ignore_conflicts=True
            )


def record_dataset_inputs(*, experiment_id: int, inputs_by_run_pk: dict[int, list[DatasetInput]]) -> None:
    """Store checked dataset inputs of runs of one experiment: each dataset once, and an input
    row per run that has none for it yet (of a run's inputs with one name and digest, the first
    wins; an input already recorded is left as it is). Three statements, however many runs."""
    first_by_run = {}
    for run_pk, datasets in inputs_by_run_pk.items():
        first: dict[tuple[str, str], DatasetInput] = {}
        for dataset in datasets:
            first.setdefault((dataset.name, dataset.digest), dataset)
        first_by_run[run_pk] = first
    unique = {key: dataset for first in first_by_run.values() for key, dataset in first.items()}
    stored = _datasets_of(experiment_id, list(unique.values()))
    RunDatasetInput.objects.bulk_create(
        [
            RunDatasetInput(
                run_id=run_pk,
                dataset=stored[key],
                tags=[{"key": t.key, "value": t.value} for t in dataset.tags],
                context=next((t.value for t in dataset.tags if t.key == DATASET_CONTEXT_TAG), None),
            )
            for run_pk, first in first_by_run.items()
            for key, dataset in first.items()
        ],
        ignore_conflicts=True,
    )


def _datasets_of(experiment_id: int, datasets: list[DatasetInput]) -> dict[tuple[str, str], Dataset]:
    """The experiment's Dataset row for each (name, digest), made where missing. A dataset
    stored already keeps what it was first logged with, as in MLflow."""
    if not datasets:
        return {}
    Dataset.objects.bulk_create(
        [
            Dataset(
                experiment_id=experiment_id,
                name=d.name,
                digest=d.digest,
                source_type=d.source_type,
                source=d.source,
                schema=d.schema,
                profile=d.profile,
            )
            for d in datasets
        ],
        ignore_conflicts=True,  # a concurrent writer's row, or one logged before, is kept
    )
    wanted = {(d.name, d.digest) for d in datasets}
    rows = Dataset.objects.filter(
        experiment_id=experiment_id, name__in={d.name for d in datasets}, digest__in={d.digest for d in datasets}
    )
    return {(row.name, row.digest): row for row in rows if (row.name, row.digest) in wanted}
