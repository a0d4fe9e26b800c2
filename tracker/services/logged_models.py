"""Write services for MLflow 3's logged models: what `log_model` and autolog call.

Each is keyword-only and atomic, applies MLflow's rules (mlflow/store/tracking/sqlalchemy_store.py
and mlflow/utils/validation.py), and refuses with the typed errors of tracker/errors.py, so
the API answers as MLflow does: INVALID_PARAMETER_VALUE (400), RESOURCE_DOES_NOT_EXIST (404).
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from tracker.errors import InvalidParameterValue, ResourceDoesNotExist
from tracker.models import (
    DELETED,
    Experiment,
    LoggedModel,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
    Run,
    RunModelOutput,
    new_model_id,
)
from tracker.services import artifacts
from tracker.services.runs import generate_run_name
from tracker.services.validation import (
    KeyValue,
    check_active,
    check_experiment_active,
    check_key,
    check_text_value,
)
from tracker.values import now_ms

# MLflow refuses these in a model's name (it becomes part of `models:/` and `runs:/` URIs).
_BAD_NAME_CHARACTERS = ("/", ":", ".", "%", '"', "'")
_MAX_NAME_LENGTH = LoggedModel._meta.get_field("name").max_length
_MAX_MODEL_TYPE_LENGTH = LoggedModel._meta.get_field("model_type").max_length
# The folder of a model's files below its experiment's artifact location, as in MLflow.
MODELS_FOLDER = "models"
ARTIFACTS_FOLDER = "artifacts"


@dataclass(frozen=True)
class ModelOutput:
    model_id: str
    step: int = 0


def model_artifact_location(experiment: Experiment, model_id: str) -> str:
    """Where a model's files live: `<experiment location>/models/<model_id>/artifacts`."""
    return f"{experiment.artifact_location.rstrip('/')}/{MODELS_FOLDER}/{model_id}/{ARTIFACTS_FOLDER}"


def check_model_name(name: str | None) -> str:
    """A model's name as MLflow allows it (None: a generated one)."""
    if name is None:
        return generate_run_name()
    if not isinstance(name, str) or not name or any(c in name for c in _BAD_NAME_CHARACTERS):
        raise InvalidParameterValue(
            f"Invalid model name ({name!r}) provided. Model name must be a non-empty string "
            f"and cannot contain the following characters: {_BAD_NAME_CHARACTERS}"
        )
    if len(name) > _MAX_NAME_LENGTH:
        raise InvalidParameterValue(f"Model name is {len(name)} characters long; the limit is {_MAX_NAME_LENGTH}")
    return name


def check_model_type(model_type: str | None) -> str:
    model_type = model_type or ""
    if len(model_type) > _MAX_MODEL_TYPE_LENGTH:
        raise InvalidParameterValue(
            f"Model type is {len(model_type)} characters long; the limit is {_MAX_MODEL_TYPE_LENGTH}"
        )
    return model_type


def check_model_status(status) -> str:
    if status not in LoggedModelStatus.values:
        raise InvalidParameterValue(f"Invalid logged model status {status!r}")
    return status


def _checked(pairs: Iterable[KeyValue], what: str) -> list[KeyValue]:
    return [KeyValue(check_key(p.key, what), check_text_value(p.value, what, p.key)) for p in pairs]


def _last_value_per_key(pairs: list[KeyValue]) -> dict[str, str]:
    return {pair.key: pair.value for pair in pairs}


def _check_model_active(model: LoggedModel) -> None:
    if model.lifecycle_stage == DELETED:
        raise ResourceDoesNotExist(f"Logged model with ID '{model.model_id}' not found.")


def logged_model_create(
    *,
    experiment: Experiment,
    name: str | None = None,
    model_type: str | None = None,
    source_run: Run | None = None,
    tags: Iterable[KeyValue] = (),
    params: Iterable[KeyValue] = (),
) -> LoggedModel:
    """A new model in the PENDING state, its artifact location below its experiment's."""
    name = check_model_name(name)
    model_type = check_model_type(model_type)
    tags = _last_value_per_key(_checked(tags, "Tag"))
    params = _checked(params, "Param")
    with transaction.atomic():
        check_experiment_active(experiment)
        model_id = new_model_id()
        stamp = now_ms()
        model = LoggedModel.objects.create(
            model_id=model_id,
            experiment=experiment,
            source_run=source_run,
            name=name,
            model_type=model_type,
            status=LoggedModelStatus.PENDING,
            artifact_location=model_artifact_location(experiment, model_id),
            creation_time=stamp,
            last_updated_time=stamp,
        )
        LoggedModelTag.objects.bulk_create(LoggedModelTag(model=model, key=k, value=v) for k, v in tags.items())
        _add_params(model, params)
    return model


def logged_model_log_params(*, model: LoggedModel, params: Iterable[KeyValue]) -> None:
    """Add params; a key already there keeps its value (a different one is refused)."""
    params = _checked(params, "Param")
    with transaction.atomic():
        _check_model_active(model)
        _add_params(model, params)
        _touch(model)


def _add_params(model: LoggedModel, params: list[KeyValue]) -> None:
    given: dict[str, str] = {}
    for param in params:
        if given.setdefault(param.key, param.value) != param.value:
            raise InvalidParameterValue(f"Param '{param.key}' was given twice with different values")
    if not given:
        return
    stored = dict(LoggedModelParam.objects.filter(model=model, key__in=given).values_list("key", "value"))
    for key, value in given.items():
        if key in stored and stored[key] != value:
            raise InvalidParameterValue(
                f"Changing param values is not allowed. Param with key='{key}' was already logged "
                f"for model ID='{model.model_id}'."
            )
    LoggedModelParam.objects.bulk_create(
        [LoggedModelParam(model=model, key=key, value=value) for key, value in given.items() if key not in stored]
    )


def logged_model_finalize(*, model: LoggedModel, status: str, status_message: str = "") -> LoggedModel:
    """READY once its files are uploaded, FAILED if the upload failed (the client decides)."""
    check_model_status(status)
    with transaction.atomic():
        _check_model_active(model)
        model.status = status
        model.status_message = status_message or ""
        model.last_updated_time = now_ms()
        model.save(update_fields=["status", "status_message", "last_updated_time"])
    return model


def logged_model_set_tags(*, model: LoggedModel, tags: Iterable[KeyValue]) -> None:
    """Set tags, replacing stored values; a key given twice keeps its last value, as in MLflow."""
    tags = _last_value_per_key(_checked(tags, "Tag"))
    with transaction.atomic():
        _check_model_active(model)
        LoggedModelTag.objects.bulk_create(
            [LoggedModelTag(model=model, key=key, value=value) for key, value in tags.items()],
            update_conflicts=True,
            unique_fields=["model", "key"],
            update_fields=["value"],
        )
        _touch(model)


def logged_model_delete_tag(*, model: LoggedModel, key: str) -> None:
    with transaction.atomic():
        _check_model_active(model)
        deleted, _ = LoggedModelTag.objects.filter(model=model, key=key).delete()
        if not deleted:
            raise ResourceDoesNotExist(f"No tag with key {key!r} found for model with ID {model.model_id!r}.")
        _touch(model)


def logged_model_delete(*, model: LoggedModel) -> None:
    """Soft delete, as MLflow: the model is hidden, its files stay until `manage.py gc`."""
    with transaction.atomic():
        _check_model_active(model)
        model.lifecycle_stage = DELETED
        model.last_updated_time = now_ms()
        model.save(update_fields=["lifecycle_stage", "last_updated_time"])


def _touch(model: LoggedModel) -> None:
    model.last_updated_time = now_ms()
    LoggedModel.objects.filter(pk=model.pk).update(last_updated_time=model.last_updated_time)


def run_log_outputs(*, run: Run, models: Iterable[ModelOutput]) -> None:
    """Record the models a run produced (log_model calls this with the model's step). A model
    already recorded for the run is left as it is, so a retry changes nothing."""
    models = list(models)
    model_ids = {output.model_id for output in models}
    with transaction.atomic():
        check_active(run)
        known = {m.model_id: m for m in LoggedModel.objects.active().filter(model_id__in=model_ids)}
        for model_id in model_ids - set(known):
            raise ResourceDoesNotExist(f"Logged model with ID '{model_id}' not found.")
        RunModelOutput.objects.bulk_create(
            [RunModelOutput(run=run, model=known[output.model_id], step=output.step) for output in models],
            ignore_conflicts=True,
        )


@dataclass(frozen=True)
class PurgedModel:
    model_id: str
    name: str
    experiment_id: int
    artifact_files: int


def deleted_logged_models_purge(
    *, deleted_before_ms: int | None = None, experiment_ids: list[int] | None = None
) -> list[PurgedModel]:
    """Remove deleted logged models for good, as `mlflow gc` does: their tags, params, metrics,
    run links and files. A model that is not deleted is never touched. MLflow dates a model's
    deletion by its last update, and so does this."""
    models = LoggedModel.objects.filter(lifecycle_stage=DELETED).order_by("pk")
    if deleted_before_ms is not None:
        models = models.filter(last_updated_time__lte=deleted_before_ms)
    if experiment_ids:
        models = models.filter(experiment_id__in=experiment_ids)
    purged = []
    for model in models:
        # The files first: if removing them fails, the model is still there, deleted, to purge again.
        try:
            folder = artifacts.logged_model_artifact_path(model=model, path=None)
        except InvalidParameterValue:  # its files are not in this server's store
            folder = None
        files = artifacts.artifact_tree_delete(name=folder) if folder else 0
        model.delete()
        purged.append(PurgedModel(model.model_id, model.name, model.experiment_id, files))
    return purged
