"""The registry's JSON shapes, as MLflow's server writes them (model_registry.proto mapped to
JSON): versions are strings, times epoch milliseconds, unset fields left out as protobuf leaves
them. Which fields are set is the server's choice, matched here: a version's description, run id
and run link are always set ("" when the request left them out, as its store keeps them), while a
registered model's description is left out when empty (the client reads "" either way)."""

from django.db.models import Prefetch

from registry.models import ModelVersion, RegisteredModel, RegisteredModelAlias


def versions_for_json(queryset=None):
    """Versions with what model_version_to_dict reads: the model, tags and aliases."""
    queryset = ModelVersion.objects.all() if queryset is None else queryset
    return queryset.select_related("registered_model").prefetch_related("tags", "aliases")


def models_for_json(queryset=None, *, searched: bool = False):
    """Registered models with what registered_model_to_dict reads, in four queries whatever the
    number of models or versions: the models, their tags, aliases, and latest version per stage,
    listed as MLflow's get_registered_model lists them or, if `searched`, as its
    search_registered_models does."""
    queryset = RegisteredModel.objects.all() if queryset is None else queryset
    latest = ModelVersion.objects.latest_per_stage()
    # MLflow's search reads them with a window query partitioned by stage and no ORDER BY: on its
    # default store (SQLite) they come by stage name.
    latest = latest.order_by("stage") if searched else latest.by_first_version_in_stage()
    return queryset.prefetch_related(
        "tags",
        Prefetch("aliases", queryset=RegisteredModelAlias.objects.select_related("version")),
        Prefetch("versions", queryset=latest.prefetch_related("tags", "aliases"), to_attr="latest_versions"),
    )


def _with_set_fields(payload: dict, *optional: str) -> dict:
    for key in optional:
        if not payload[key]:
            del payload[key]
    return payload


def model_version_to_dict(version: ModelVersion, *, name: str | None = None) -> dict:
    payload = {
        "name": name or version.registered_model.name,
        "version": str(version.version),
        "creation_timestamp": version.creation_time,
        "last_updated_timestamp": version.last_updated_time,
        "user_id": version.user_id,
        "current_stage": version.stage,
        "description": version.description,
        "source": version.source,
        "run_id": version.run_id,
        "status": version.status,
        "status_message": version.status_message,
        "tags": [{"key": tag.key, "value": tag.value} for tag in version.tags.all()],
        "run_link": version.run_link,
        "aliases": [alias.alias for alias in version.aliases.all()],
        "model_id": version.model_id,
    }
    return _with_set_fields(payload, "user_id", "status_message", "model_id")


def registered_model_to_dict(model: RegisteredModel) -> dict:
    """Needs models_for_json's prefetches (which also put latest_versions in MLflow's order)."""
    payload = {
        "name": model.name,
        "creation_timestamp": model.creation_time,
        "last_updated_timestamp": model.last_updated_time,
        "description": model.description,
        "latest_versions": [model_version_to_dict(version, name=model.name) for version in model.latest_versions],
        "tags": [{"key": tag.key, "value": tag.value} for tag in model.tags.all()],
        "aliases": [{"alias": alias.alias, "version": str(alias.version.version)} for alias in model.aliases.all()],
    }
    return _with_set_fields(payload, "description")
