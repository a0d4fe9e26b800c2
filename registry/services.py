"""Writes to the model registry: keyword-only, typed, atomic, refusing with MLflow's error codes.

Every write that changes what a model shows moves its `last_updated_time`, as MLflow's
store does, so "recently updated" sorts put it first.
"""

import json
import posixpath
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F

from registry.models import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
)
from registry.validation import (
    ACTIVE_STAGES,
    STAGE_ARCHIVED,
    canonical_stage,
    check_alias,
    check_description,
    check_model_name,
    check_new_alias,
    check_tag,
)
from tracker.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from tracker.models import LoggedModel, LoggedModelTag, Run
from tracker.services import KeyValue, artifacts
from tracker.services.logged_models import logged_model_set_tags
from tracker.values import now_ms

# The logged model's record of the registered versions made from it (mlflow.utils.mlflow_tags).
MODEL_VERSIONS_TAG = "mlflow.modelVersions"


@dataclass(frozen=True)
class Tag:
    key: str
    value: str


def _checked_tags(tags: Iterable[Tag]) -> dict[str, str]:
    # A key given twice keeps its last value, as MLflow's store does.
    return dict(check_tag(tag.key, tag.value) for tag in tags)


def _touch(model: RegisteredModel, at: int) -> None:
    RegisteredModel.objects.filter(pk=model.pk).update(last_updated_time=at)
    model.last_updated_time = at


# --- registered models -----------------------------------------------------------------------


@transaction.atomic
def registered_model_create(*, name: str, description: str = "", tags: Iterable[Tag] = ()) -> RegisteredModel:
    name = check_model_name(name)
    description = check_description(description)
    checked = _checked_tags(tags)
    now = now_ms()
    try:
        # A savepoint: a lost race for the name must not break the caller's transaction.
        with transaction.atomic():
            model = RegisteredModel.objects.create(
                name=name, description=description, creation_time=now, last_updated_time=now
            )
    except IntegrityError:
        raise ResourceAlreadyExists(f"Registered Model (name={name}) already exists.") from None
    RegisteredModelTag.objects.bulk_create(
        RegisteredModelTag(registered_model=model, key=key, value=value) for key, value in checked.items()
    )
    return model


@transaction.atomic
def registered_model_rename(*, model: RegisteredModel, new_name: str) -> RegisteredModel:
    new_name = check_model_name(new_name, field="new_name")
    if new_name == model.name:
        return model
    model.name = new_name
    model.last_updated_time = now_ms()
    try:
        with transaction.atomic():
            model.save(update_fields=["name", "last_updated_time"])
    except IntegrityError:
        raise ResourceAlreadyExists(f"Registered Model (name={new_name}) already exists.") from None
    return model


def registered_model_update(*, model: RegisteredModel, description: str) -> RegisteredModel:
    model.description = check_description(description)
    model.last_updated_time = now_ms()
    model.save(update_fields=["description", "last_updated_time"])
    return model


def registered_model_delete(*, model: RegisteredModel) -> None:
    """The model, its versions, tags and aliases. The runs and their files stay."""
    model.delete()


@transaction.atomic
def registered_model_set_tag(*, model: RegisteredModel, key: str, value: str) -> None:
    key, value = check_tag(key, value)
    RegisteredModelTag.objects.update_or_create(registered_model=model, key=key, defaults={"value": value})


def registered_model_delete_tag(*, model: RegisteredModel, key: str) -> None:
    """Deleting a tag the model does not have is not an error, as in MLflow."""
    key, _ = check_tag(key, "")
    RegisteredModelTag.objects.filter(registered_model=model, key=key).delete()


@transaction.atomic
def registered_model_set_alias(*, model: RegisteredModel, alias: str, version: int | str) -> RegisteredModelAlias:
    """Point `@alias` at a version; an alias on another version moves here."""
    alias = check_new_alias(alias)
    target = ModelVersion.objects.get_by_number(model.name, version)
    row, _ = RegisteredModelAlias.objects.update_or_create(
        registered_model=model, alias=alias, defaults={"version": target}
    )
    _touch(model, now_ms())
    return row


@transaction.atomic
def registered_model_delete_alias(*, model: RegisteredModel, alias: str) -> None:
    """Deleting an alias the model does not have is not an error, as in MLflow."""
    alias = check_alias(alias)
    if RegisteredModelAlias.objects.filter(registered_model=model, alias=alias).delete()[0]:
        _touch(model, now_ms())


# --- model versions --------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionSource:
    """Where a new version's files are and what made them: the source URI as given, where to
    download it from, and the run and logged model it came from (either may be empty)."""

    source: str
    storage_location: str
    run: Run | None
    run_id: str
    model_id: str
    logged_model: LoggedModel | None = None


def _invalid_source(source: str, identifier: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Invalid model version source: '{source}'. The {identifier} request parameter must "
        "identify the resource that contains the source."
    )


def _check_no_relative_parts(source: str) -> None:
    # A `..` in a source could reach another run's files through get-download-uri; it may come
    # percent-encoded, more than once.
    while (unquoted := urllib.parse.unquote_plus(source)) != source:
        source = unquoted
    if "\x00" in source or ".." in source.split("/") or "\\" in source:
        raise InvalidParameterValue(
            f"Invalid model version source: '{source}'. An absolute path must be provided, "
            "without relative path references."
        )


def _logged_model(source: str, model_id: str) -> LoggedModel:
    try:
        return LoggedModel.objects.select_related("source_run").get_by_model_id(model_id)
    except ResourceDoesNotExist:
        raise _invalid_source(source, "model_id") from None


def _within(uri: str, root: str) -> bool:
    root = root.rstrip("/")
    return bool(root) and (uri.rstrip("/") == root or uri.startswith(root + "/"))


def resolve_source(*, source: str, run_id: str = "", model_id: str = "") -> VersionSource:
    """Check a new version's source as MLflow's server does, and find where its files are.

    - `models:/<model_id>`: a logged model; its files are in the model's artifact folder, and
      its run is the model's source run unless run_id says otherwise.
    - `models:/<name>/<version>`, `models:/<name>@<alias>`: another registered version's files.
    - `runs:/<run_id>/<path>`: must name the run given as run_id.
    - `mlflow-artifacts:/...`: must lie inside the run's (or the logged model's) artifact folder.
    - a local path or `file:` URI: refused (the server's disk is not the client's).
    - anything else (`s3://...`, `https://...`): kept as given.
    """
    if not source:
        raise InvalidParameterValue("Missing value for required parameter 'source'.")
    _check_no_relative_parts(source)
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # one letter: a Windows drive
        raise InvalidParameterValue(
            f"Invalid model version source: '{source}'. A local path cannot be a model version source "
            "on a tracking server; log the model to a run (log_model) and register its URI."
        )
    run = Run.objects.filter(run_id=run_id).first() if run_id else None
    if run_id and run is None:
        raise _invalid_source(source, "run_id")
    storage_location = source
    if parsed.scheme == "models":
        path = parsed.path.lstrip("/")
        if parsed.netloc:
            raise InvalidParameterValue(
                f"Invalid model version source: '{source}'. Registered model sources must use this registry."
            )
        if "/" in path or "@" in path:
            name, _, reference = path.replace("@", "/@", 1).partition("/")
            if reference.startswith("@"):
                other = ModelVersion.objects.get_by_alias(name, reference[1:])
            else:
                other = ModelVersion.objects.get_by_number(name, reference)
            source = f"models:/{other.registered_model.name}/{other.version}"
            storage_location = other.storage_location or other.source
            run_id, run, model_id = other.run_id, other.source_run, other.model_id
        else:
            if model_id and model_id != path:
                raise _invalid_source(source, "model_id")
            model_id = path
            logged_model = _logged_model(source, model_id)
            return VersionSource(
                source=source,
                storage_location=logged_model.artifact_location,
                run=run or logged_model.source_run,
                run_id=run_id or (logged_model.source_run.run_id if logged_model.source_run else ""),
                model_id=model_id,
                logged_model=logged_model,
            )
    elif parsed.scheme == "runs":
        source_run_id, _, artifact_path = parsed.path.lstrip("/").partition("/")
        if parsed.netloc or run is None or source_run_id != run_id:
            raise _invalid_source(source, "run_id")
        storage_location = f"{run.artifact_uri.rstrip('/')}/{artifact_path}".rstrip("/")
    elif parsed.scheme == "mlflow-artifacts":
        inside_run = run is not None and _within(source, run.artifact_uri)
        inside_model = bool(model_id) and _within(source, _logged_model(source, model_id).artifact_location)
        if not (inside_run or inside_model):
            raise _invalid_source(source, "model_id" if model_id else "run_id")
    return VersionSource(
        source=source, storage_location=storage_location, run=run, run_id=run_id or "", model_id=model_id or ""
    )


def model_version_artifact_open(*, version: ModelVersion, path: str) -> artifacts.ArtifactDownload:
    """The file at `path` among the version's files (model-versions/get-artifact): the folder its
    storage location names, inside its logged model's or its run's artifacts. `path` may not leave
    that folder (InvalidParameterValue); a version whose files are not in this server's store has
    none to give (ResourceDoesNotExist)."""
    # Checked on its own first, so a refusal names the path the client sent.
    relative = artifacts.artifact_path_normalise(path) if path else ""
    location = version.storage_location or version.source
    logged_model = LoggedModel.objects.filter(model_id=version.model_id).first() if version.model_id else None
    run = version.source_run
    if logged_model is not None and _within(location, logged_model.artifact_location):
        inside = posixpath.join(_below(location, logged_model.artifact_location), relative)
        name = artifacts.logged_model_artifact_path(model=logged_model, path=inside)
    elif run is not None and _within(location, run.artifact_uri):
        name = artifacts.run_artifact_path(run=run, path=posixpath.join(_below(location, run.artifact_uri), relative))
    else:
        raise ResourceDoesNotExist(
            f"Model Version (name={version.registered_model.name}, version={version.version}) has no files "
            f"in this server's artifact store; its source is {location!r}."
        )
    return artifacts.artifact_open(path=name)


def _below(uri: str, root: str) -> str:
    """The part of `uri` below `root` (a folder _within() found it in): "" for the folder itself."""
    return uri.rstrip("/")[len(root.rstrip("/")) :].strip("/")


@transaction.atomic
def model_version_create(
    *,
    model: RegisteredModel,
    source: VersionSource,
    description: str = "",
    tags: Iterable[Tag] = (),
    run_link: str = "",
    user_id: str = "",
) -> ModelVersion:
    """The model's next version, READY at once. Takes the model's row lock (the counter's
    UPDATE), so two registrations at the same moment get different numbers."""
    description = check_description(description)
    checked = _checked_tags(tags)
    now = now_ms()
    RegisteredModel.objects.filter(pk=model.pk).update(next_version=F("next_version") + 1, last_updated_time=now)
    number = RegisteredModel.objects.values_list("next_version", flat=True).get(pk=model.pk) - 1
    model.last_updated_time = now
    version = ModelVersion.objects.create(
        registered_model=model,
        version=number,
        source=source.source,
        storage_location=source.storage_location,
        source_run=source.run,
        run_id=source.run_id,
        run_link=run_link,
        model_id=source.model_id,
        description=description,
        user_id=user_id,
        creation_time=now,
        last_updated_time=now,
    )
    ModelVersionTag.objects.bulk_create(
        ModelVersionTag(version=version, key=key, value=value) for key, value in checked.items()
    )
    if source.logged_model is not None:
        _tag_logged_model(source.logged_model, model.name, number)
    return version


def _tag_logged_model(logged_model: LoggedModel, name: str, version: int) -> None:
    """Add the version to the logged model's `mlflow.modelVersions` tag, as MLflow's server does,
    so the model says which registered versions it became. The version is a JSON number there
    (the client's register_model then appends it once more as a string)."""
    tag = LoggedModelTag.objects.filter(model=logged_model, key=MODEL_VERSIONS_TAG).first()
    versions = json.loads(tag.value) if tag else []
    entry = {"name": name, "version": version}
    if entry not in versions:
        versions.append(entry)
        logged_model_set_tags(model=logged_model, tags=[KeyValue(MODEL_VERSIONS_TAG, json.dumps(versions))])


def model_version_update(*, version: ModelVersion, description: str) -> ModelVersion:
    version.description = check_description(description)
    version.last_updated_time = now_ms()
    version.save(update_fields=["description", "last_updated_time"])
    return version


@transaction.atomic
def model_version_transition_stage(
    *, version: ModelVersion, stage: str, archive_existing_versions: bool = False
) -> ModelVersion:
    """Move a version to a stage; with archive_existing_versions, the model's other versions in
    that stage (Staging or Production only) move to Archived."""
    stage = canonical_stage(stage)
    if archive_existing_versions and stage not in ACTIVE_STAGES:
        raise InvalidParameterValue(
            f"Model version transition cannot archive existing model versions because '{stage}' is not "
            f"an Active stage. Valid stages are {', '.join(ACTIVE_STAGES)}."
        )
    now = now_ms()
    if archive_existing_versions:
        ModelVersion.objects.filter(registered_model=version.registered_model_id, stage=stage).exclude(
            pk=version.pk
        ).update(stage=STAGE_ARCHIVED, last_updated_time=now)
    version.stage = stage
    version.last_updated_time = now
    version.save(update_fields=["stage", "last_updated_time"])
    _touch(version.registered_model, now)
    return version


@transaction.atomic
def model_version_delete(*, version: ModelVersion) -> None:
    """The version, its tags and aliases; its number is never given again (the model's counter)."""
    version.delete()
    _touch(version.registered_model, now_ms())


@transaction.atomic
def model_version_set_tag(*, version: ModelVersion, key: str, value: str) -> None:
    key, value = check_tag(key, value)
    ModelVersionTag.objects.update_or_create(version=version, key=key, defaults={"value": value})


def model_version_delete_tag(*, version: ModelVersion, key: str) -> None:
    key, _ = check_tag(key, "")
    ModelVersionTag.objects.filter(version=version, key=key).delete()
