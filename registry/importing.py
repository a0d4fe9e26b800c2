"""`import_mlflow`'s registry part: a source's registered models, their versions (numbers kept),
aliases, stages, descriptions and tags, read through mlflow's own registry client.

It runs after the experiments and runs are in (RegistryConfig.import_from_mlflow), so a
version finds its run by id. Running it again adds what is new (models, versions, tags, and an
alias whose name the model has no alias for here) and changes nothing Runtree holds: a
description, stage or alias may have been edited here since. Nothing in Runtree is deleted.
"""

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.db import transaction
from django.db.models import Max

from registry import services
from registry.models import ModelVersion, ModelVersionTag, RegisteredModel, RegisteredModelAlias, RegisteredModelTag
from registry.validation import STAGE_NONE, canonical_stage
from tracker.errors import InvalidParameterValue, TrackingError
from tracker.importing import SourceError, database_url
from tracker.models import Run

_PAGE = 1000
_ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


@dataclass
class RegistryImportCounts:
    models_created: int = 0
    models_existing: int = 0
    versions_created: int = 0
    versions_existing: int = 0
    # Aliases set by this import: those whose name the model had no alias for here.
    aliases: int = 0

    def summary(self) -> str:
        models = self.models_created + self.models_existing
        return (
            f"Registry: {models} registered models ({self.models_created} new); versions: "
            f"{self.versions_created} new, {self.versions_existing} already here; {self.aliases} new aliases."
        )


def registry_uri(location: str) -> str:
    """The registry URI of an import source: a tracking server is its own; a database URL is the
    one the tracking import reads (database_url: postgres:// and postgresql:// name psycopg2); an
    mlruns folder (a path) becomes its file:// URI."""
    if location.startswith(("http://", "https://", "file:")):
        return location
    if "://" in location:
        return database_url(location)
    return Path(location).expanduser().resolve().as_uri()


@contextlib.contextmanager
def _file_store_allowed():
    # mlflow 3 opens a file store only when asked to (see tracker's FileStoreSource).
    before = os.environ.get(_ALLOW_FILE_STORE)
    os.environ[_ALLOW_FILE_STORE] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_ALLOW_FILE_STORE, None)
        else:
            os.environ[_ALLOW_FILE_STORE] = before


def _paged(search, **kwargs) -> list:
    found, token = [], None
    while True:
        page = search(max_results=_PAGE, page_token=token, **kwargs)
        found.extend(page)
        token = page.token
        if not token:
            return found


def registry_import_from(location: str) -> RegistryImportCounts:
    """Import every registered model of the MLflow source at `location`."""
    # mlflow is a development requirement of Runtree, as for the tracking import.
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = registry_uri(location)
    counts = RegistryImportCounts()
    with _file_store_allowed():
        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            for source_model in _paged(client.search_registered_models):
                # A quote inside the name is escaped with a backslash in MLflow's filter strings.
                quoted = source_model.name.replace("'", "\\'")
                versions = _paged(client.search_model_versions, filter_string=f"name = '{quoted}'")
                with transaction.atomic():
                    _import_model(source_model, versions, counts)
        except (MlflowException, OSError) as exc:
            # Not the location in the message: a database URL may hold a password.
            raise SourceError(f"Reading the source's model registry failed: {exc}") from None
    return counts


def _import_model(source_model, source_versions: list, counts: RegistryImportCounts) -> None:
    model = RegisteredModel.objects.filter(name=source_model.name).first()
    if model is None:
        model = RegisteredModel.objects.create(
            name=source_model.name,
            description=source_model.description or "",
            creation_time=source_model.creation_timestamp or 0,
            last_updated_time=source_model.last_updated_timestamp or 0,
        )
        counts.models_created += 1
    else:
        counts.models_existing += 1  # its description stays Runtree's
    held_tags = set(model.tags.values_list("key", flat=True))
    RegisteredModelTag.objects.bulk_create(
        [
            RegisteredModelTag(registered_model=model, key=key, value=value)
            for key, value in source_model.tags.items()
            if key not in held_tags
        ]
    )
    for source_version in source_versions:
        _import_version(model, source_version, counts)
    # The counter goes past every imported number, so a new version never takes one.
    highest = model.versions.aggregate(highest=Max("version"))["highest"] or 0
    RegisteredModel.objects.filter(pk=model.pk, next_version__lte=highest).update(next_version=highest + 1)
    # An alias Runtree holds keeps its version: moving it back would have `models:/name@alias`
    # silently load another model than the one it was pointed at here.
    held_aliases = set(model.aliases.values_list("alias", flat=True))
    for alias, number in source_model.aliases.items():
        version = model.versions.filter(version=int(number)).first()
        if version is not None and alias not in held_aliases:
            RegisteredModelAlias.objects.create(registered_model=model, alias=alias, version=version)
            counts.aliases += 1


def _resolved(source: str, run: Run | None, model_id: str) -> tuple[str, str]:
    """Where the version's files are in Runtree and the logged model it was made from, as
    registration would resolve them. MLflow's registry stores keep no model id, so a
    `models:/<model_id>` source names it. A source only the old server could read (its local
    folder) maps into the run's artifacts."""
    try:
        resolved = services.resolve_source(source=source, run_id=run.run_id if run else "", model_id=model_id)
        return resolved.storage_location, resolved.model_id or model_id
    except TrackingError:
        pass
    path = unquote(urlparse(source).path)
    if run is not None and "/artifacts/" in path:
        return f"{run.artifact_uri.rstrip('/')}/{path.split('/artifacts/', 1)[1]}", model_id
    return source, model_id


def _import_version(model: RegisteredModel, source_version, counts: RegistryImportCounts) -> None:
    version = model.versions.filter(version=int(source_version.version)).first()
    if version is not None:
        # Held already: its stage, description and the rest stay Runtree's; only new tags are added.
        counts.versions_existing += 1
        _add_version_tags(version, source_version.tags)
        return
    run = Run.objects.filter(run_id=source_version.run_id).first() if source_version.run_id else None
    storage_location, model_id = _resolved(
        source_version.source or "", run, getattr(source_version, "model_id", None) or ""
    )
    try:
        stage = canonical_stage(source_version.current_stage or STAGE_NONE)
    except InvalidParameterValue:
        stage = STAGE_NONE
    version = ModelVersion.objects.create(
        registered_model=model,
        version=int(source_version.version),
        source=source_version.source or "",
        storage_location=storage_location,
        source_run=run,
        run_id=source_version.run_id or "",
        run_link=source_version.run_link or "",
        model_id=model_id,
        status=source_version.status or "READY",
        status_message=source_version.status_message or "",
        stage=stage,
        description=source_version.description or "",
        user_id=source_version.user_id or "",
        creation_time=source_version.creation_timestamp or 0,
        last_updated_time=source_version.last_updated_timestamp or 0,
    )
    counts.versions_created += 1
    _add_version_tags(version, source_version.tags)


def _add_version_tags(version: ModelVersion, tags: dict[str, str]) -> None:
    held = set(version.tags.values_list("key", flat=True))
    ModelVersionTag.objects.bulk_create(
        [ModelVersionTag(version=version, key=key, value=value) for key, value in tags.items() if key not in held]
    )
