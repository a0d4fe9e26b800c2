"""MLflow's model registry RPCs (model_registry.proto's ModelRegistryService): one function
each, made an endpoint by tracker's `rpc` decorator. Each reads its fields, calls one service in
registry/services.py (or a lookup), and returns the response as a dict."""

from registry import services
from registry.api.mlflow_json import (
    model_version_to_dict,
    models_for_json,
    registered_model_to_dict,
    versions_for_json,
)
from registry.filtering import MODEL_VERSIONS, REGISTERED_MODELS, search_filter, search_ordering
from registry.models import ModelVersion, RegisteredModel
from registry.validation import STAGES, canonical_stage, check_alias, check_model_name
from tracker.api.mlflow.json import Fields, offset_from_page_token

# The helpers every MLflow view uses: the registry's RPCs are MLflow RPCs like tracker's.
from tracker.api.mlflow.views import _max_results, _paged, _with_token, by_method, rpc

# MLflow's limits (mlflow/store/model_registry/__init__.py).
SEARCH_REGISTERED_MODELS_DEFAULT, SEARCH_REGISTERED_MODELS_MAX = 100, 1000
SEARCH_MODEL_VERSIONS_DEFAULT, SEARCH_MODEL_VERSIONS_MAX = 10_000, 200_000


def _model(fields: Fields) -> RegisteredModel:
    return RegisteredModel.objects.get_by_name(fields.string("name", required=True))


def _version(fields: Fields) -> ModelVersion:
    return ModelVersion.objects.get_by_number(fields.string("name", required=True), fields.string("version"))


def _tags(fields: Fields) -> list[services.Tag]:
    return [services.Tag(tag.string("key", required=True), tag.string("value") or "") for tag in fields.objects("tags")]


def _model_payload(model: RegisteredModel) -> dict:
    return {"registered_model": registered_model_to_dict(models_for_json().get(pk=model.pk))}


def _version_payload(version: ModelVersion) -> dict:
    return {"model_version": model_version_to_dict(versions_for_json().get(pk=version.pk))}


# --- registered models -------------------------------------------------------------------------


@rpc("POST")
def create_registered_model(fields: Fields) -> dict:
    model = services.registered_model_create(
        name=fields.string("name", required=True),
        description=fields.string("description") or "",
        tags=_tags(fields),
    )
    return _model_payload(model)


@rpc("GET")
def get_registered_model(fields: Fields) -> dict:
    return _model_payload(_model(fields))


@rpc("POST")
def rename_registered_model(fields: Fields) -> dict:
    model = services.registered_model_rename(model=_model(fields), new_name=fields.string("new_name", required=True))
    return _model_payload(model)


@rpc("PATCH")
def update_registered_model(fields: Fields) -> dict:
    model = services.registered_model_update(model=_model(fields), description=fields.string("description") or "")
    return _model_payload(model)


@rpc("DELETE")
def delete_registered_model(fields: Fields) -> dict:
    services.registered_model_delete(model=_model(fields))
    return {}


@rpc("GET")
def search_registered_models(fields: Fields) -> dict:
    max_results = _max_results(fields, default=SEARCH_REGISTERED_MODELS_DEFAULT, limit=SEARCH_REGISTERED_MODELS_MAX)
    models = models_for_json(
        RegisteredModel.objects.filter(search_filter(fields.string("filter"), REGISTERED_MODELS)).order_by(
            *search_ordering(fields.strings("order_by"), REGISTERED_MODELS)
        ),
        searched=True,
    )
    page, token = _paged(models, offset=offset_from_page_token(fields.string("page_token")), max_results=max_results)
    return _with_token({"registered_models": [registered_model_to_dict(model) for model in page]}, token)


@rpc("GET", "POST")
def get_latest_versions(fields: Fields) -> dict:
    model = _model(fields)
    stages = [canonical_stage(stage) for stage in fields.strings("stages")] or list(STAGES)
    latest = versions_for_json(
        ModelVersion.objects.latest_per_stage().filter(registered_model=model, stage__in=stages)
    ).by_first_version_in_stage()
    return {"model_versions": [model_version_to_dict(version) for version in latest]}


@rpc("POST")
def set_registered_model_tag(fields: Fields) -> dict:
    services.registered_model_set_tag(
        model=_model(fields), key=fields.string("key", required=True), value=fields.string("value") or ""
    )
    return {}


@rpc("DELETE")
def delete_registered_model_tag(fields: Fields) -> dict:
    services.registered_model_delete_tag(model=_model(fields), key=fields.string("key", required=True))
    return {}


@rpc("POST")
def set_registered_model_alias(fields: Fields) -> dict:
    services.registered_model_set_alias(
        model=_model(fields), alias=fields.string("alias", required=True), version=fields.string("version") or ""
    )
    return {}


@rpc("DELETE")
def delete_registered_model_alias(fields: Fields) -> dict:
    services.registered_model_delete_alias(model=_model(fields), alias=fields.string("alias", required=True))
    return {}


@rpc("GET")
def get_model_version_by_alias(fields: Fields) -> dict:
    name = check_model_name(fields.string("name", required=True))
    return _version_payload(ModelVersion.objects.get_by_alias(name, check_alias(fields.string("alias"))))


# registered-models/alias is three RPCs, told apart by the method: set (POST), delete (DELETE),
# and the version an alias names (GET); any other method gets a 405 that lists all three.
registered_model_alias = by_method(
    post=set_registered_model_alias, delete=delete_registered_model_alias, get=get_model_version_by_alias
)


# --- model versions ----------------------------------------------------------------------------


@rpc("POST")
def create_model_version(fields: Fields) -> dict:
    model = _model(fields)
    source = services.resolve_source(
        source=fields.string("source", required=True),
        run_id=fields.string("run_id") or "",
        model_id=fields.string("model_id") or "",
    )
    version = services.model_version_create(
        model=model,
        source=source,
        description=fields.string("description") or "",
        tags=_tags(fields),
        run_link=fields.string("run_link") or "",
    )
    return _version_payload(version)


@rpc("GET")
def get_model_version(fields: Fields) -> dict:
    return _version_payload(_version(fields))


@rpc("PATCH")
def update_model_version(fields: Fields) -> dict:
    version = services.model_version_update(version=_version(fields), description=fields.string("description") or "")
    return _version_payload(version)


@rpc("POST")
def transition_model_version_stage(fields: Fields) -> dict:
    version = services.model_version_transition_stage(
        version=_version(fields),
        stage=fields.string("stage", required=True),
        archive_existing_versions=fields.boolean("archive_existing_versions", default=False),
    )
    return _version_payload(version)


@rpc("DELETE")
def delete_model_version(fields: Fields) -> dict:
    services.model_version_delete(version=_version(fields))
    return {}


@rpc("GET")
def search_model_versions(fields: Fields) -> dict:
    max_results = _max_results(fields, default=SEARCH_MODEL_VERSIONS_DEFAULT, limit=SEARCH_MODEL_VERSIONS_MAX)
    versions = versions_for_json(
        ModelVersion.objects.filter(search_filter(fields.string("filter"), MODEL_VERSIONS)).order_by(
            *search_ordering(fields.strings("order_by"), MODEL_VERSIONS)
        )
    )
    page, token = _paged(versions, offset=offset_from_page_token(fields.string("page_token")), max_results=max_results)
    return _with_token({"model_versions": [model_version_to_dict(version) for version in page]}, token)


@rpc("GET")
def get_model_version_download_uri(fields: Fields) -> dict:
    version = _version(fields)
    return {"artifact_uri": version.storage_location or version.source}


@rpc("POST")
def set_model_version_tag(fields: Fields) -> dict:
    services.model_version_set_tag(
        version=_version(fields), key=fields.string("key", required=True), value=fields.string("value") or ""
    )
    return {}


@rpc("DELETE")
def delete_model_version_tag(fields: Fields) -> dict:
    services.model_version_delete_tag(version=_version(fields), key=fields.string("key", required=True))
    return {}
