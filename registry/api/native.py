"""The registry in the native REST API (Django REST framework, read-only like the rest of it;
writes go through the MLflow API): registered models with their versions, and versions
searchable by model, run or source with MLflow's registry filter."""

from django.db.models import Count, Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets

from registry.filtering import MODEL_VERSIONS, REGISTERED_MODELS, search_filter, search_ordering
from registry.models import ModelVersion, RegisteredModel, RegisteredModelAlias
from tracker.api.native.errors import NativeAPIMixin, TrackingAPIError
from tracker.errors import TrackingError


class ModelVersionSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="registered_model.name")
    aliases = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    run_deleted = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "name",
            "version",
            "stage",
            "status",
            "aliases",
            "description",
            "source",
            "run_id",
            "run_deleted",
            "model_id",
            "user_id",
            "creation_time",
            "last_updated_time",
            "tags",
        ]

    def get_aliases(self, version) -> list[str]:
        return [alias.alias for alias in version.aliases.all()]

    def get_tags(self, version) -> dict[str, str]:
        return {tag.key: tag.value for tag in version.tags.all()}

    def get_run_deleted(self, version) -> bool:
        """Registered from a run that has been deleted since (or removed for good)."""
        return version.run_gone


class RegisteredModelSerializer(serializers.ModelSerializer):
    version_count = serializers.IntegerField(read_only=True)
    latest_versions = serializers.SerializerMethodField()
    aliases = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = [
            "name",
            "description",
            "creation_time",
            "last_updated_time",
            "version_count",
            "latest_versions",
            "aliases",
            "tags",
        ]

    def get_latest_versions(self, model) -> dict[str, int]:
        """The highest version in each stage: {"None": 3, "Staging": 2}."""
        return {version.stage: version.version for version in model.latest_versions}

    def get_aliases(self, model) -> dict[str, int]:
        return {alias.alias: alias.version.version for alias in model.aliases.all()}

    def get_tags(self, model) -> dict[str, str]:
        return {tag.key: tag.value for tag in model.tags.all()}


FILTER = OpenApiParameter(
    "filter", OpenApiTypes.STR, description="MLflow's registry filter, e.g. name LIKE 'fraud%' AND tags.team = 'risk'"
)
ORDER_BY = OpenApiParameter("order_by", OpenApiTypes.STR, many=True, description="e.g. name DESC (repeatable)")


def _filtered(queryset, request, spec):
    try:
        return queryset.filter(search_filter(request.query_params.get("filter", ""), spec)).order_by(
            *search_ordering(request.query_params.getlist("order_by"), spec)
        )
    except TrackingError as error:
        raise TrackingAPIError(error) from None


@extend_schema(parameters=[FILTER, ORDER_BY])
class RegisteredModelViewSet(NativeAPIMixin, viewsets.ReadOnlyModelViewSet):
    """Registered models with their latest version per stage, aliases and tags."""

    serializer_class = RegisteredModelSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        models = RegisteredModel.objects.annotate(version_count=Count("versions")).prefetch_related(
            "tags",
            Prefetch("aliases", queryset=RegisteredModelAlias.objects.select_related("version")),
            Prefetch("versions", queryset=ModelVersion.objects.latest_per_stage(), to_attr="latest_versions"),
        )
        return _filtered(models, self.request, REGISTERED_MODELS) if self.action == "list" else models


@extend_schema(parameters=[FILTER, ORDER_BY])
class ModelVersionViewSet(NativeAPIMixin, viewsets.ReadOnlyModelViewSet):
    """Model versions, e.g. `?filter=run_id = '<run id>'` for the versions made from a run."""

    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        versions = ModelVersion.objects.select_related("registered_model", "source_run").prefetch_related(
            "aliases", "tags"
        )
        return _filtered(versions, self.request, MODEL_VERSIONS)
