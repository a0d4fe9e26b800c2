"""The native REST API (Django REST framework): what the dashboard's scripts and users' own
tools call when they are not MLflow-shaped. Reads only; writes go through the MLflow API."""

import csv

from django.db.models import Count, Prefetch, Q
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings

from tracker.errors import TrackingError
from tracker.filtering import order_runs
from tracker.models import ACTIVE, Experiment, LatestMetric, Param, Run, RunSummary, RunTag
from tracker.selectors import export
from tracker.selectors.runs import runs_matching
from tracker.summaries import reads as summary_reads
from tracker.values import number_or_none


class TrackingAPIError(APIException):
    """A typed refusal from the tracking domain, with its own status and MLflow error code."""

    def __init__(self, error: TrackingError):
        self.status_code = error.http_status
        super().__init__(detail={"error_code": error.error_code, "message": error.message})


class ExperimentSerializer(serializers.ModelSerializer):
    tags = serializers.SerializerMethodField()
    run_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "name",
            "lifecycle_stage",
            "artifact_location",
            "creation_time",
            "last_update_time",
            "run_count",
            "tags",
        ]

    def get_tags(self, experiment) -> dict[str, str]:
        return {tag.key: tag.value for tag in experiment.tags.all()}


class RunSerializer(serializers.ModelSerializer):
    experiment_id = serializers.IntegerField(read_only=True)
    child_count = serializers.IntegerField(read_only=True)
    parent_missing = serializers.BooleanField(read_only=True)
    params = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "run_id",
            "name",
            "experiment_id",
            "status",
            "start_time",
            "end_time",
            "lifecycle_stage",
            "user_id",
            "parent_run_id",
            "parent_missing",
            "depth",
            "child_count",
            "params",
            "metrics",
            "tags",
        ]

    def get_params(self, run) -> dict[str, str]:
        return {param.key: param.value for param in run.params.all()}

    def get_metrics(self, run) -> dict[str, float | None]:
        return {metric.key: number_or_none(metric.value) for metric in run.latest_metrics.all()}

    def get_tags(self, run) -> dict[str, str]:
        return {tag.key: tag.value for tag in run.tags.all()}


class RunSummarySerializer(serializers.ModelSerializer):
    """One metric of a parent's best-child summary (best over the subtree; stats over children)."""

    best_run_id = serializers.CharField(source="best_run.run_id", default=None)
    best_run_name = serializers.CharField(source="best_run.name", default=None)
    best_value = serializers.SerializerMethodField()
    stale = serializers.BooleanField(source="run.summary_stale")

    class Meta:
        model = RunSummary
        fields = [
            "key",
            "goal",
            "best_value",
            "best_run_id",
            "best_run_name",
            "best_params",
            "count",
            "min_value",
            "max_value",
            "mean_value",
            "std_value",
            "computed_at",
            "stale",
        ]

    def get_best_value(self, summary) -> float | None:
        return number_or_none(summary.best_value)


def runs_for_listing(queryset):
    """Runs with what the serializer reads: one query each for params, latest metrics, tags."""
    return queryset.with_child_count().prefetch_related(
        Prefetch("params", queryset=Param.objects.order_by("key")),
        Prefetch("latest_metrics", queryset=LatestMetric.objects.order_by("key")),
        Prefetch("tags", queryset=RunTag.objects.order_by("key")),
    )


class ExperimentViewSet(viewsets.ReadOnlyModelViewSet):
    """Experiments, active ones unless `?view_type=all`."""

    serializer_class = ExperimentSerializer

    def get_queryset(self):
        active_runs = Count("runs", filter=Q(runs__lifecycle_stage=ACTIVE))
        experiments = Experiment.objects.annotate(run_count=active_runs).prefetch_related("tags").order_by("id")
        if self.request.query_params.get("view_type") != "all":
            experiments = experiments.active()
        return experiments


FILTER_PARAMETERS = [
    OpenApiParameter(
        "filter", OpenApiTypes.STR, description="Filter language, e.g. tags.team = 'a' OR metrics.loss < 0.1"
    ),
    OpenApiParameter("order_by", OpenApiTypes.STR, many=True, description="e.g. metrics.loss DESC (repeatable)"),
    OpenApiParameter("experiment_id", OpenApiTypes.INT),
    OpenApiParameter("show_deleted", OpenApiTypes.BOOL),
]


class CSVRenderer(BaseRenderer):
    """Lets `?format=csv` through DRF's content negotiation. The run listing streams its rows
    itself (tracker/selectors/export.py); this renders only what else may answer in CSV: an error."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict):
            return "\n".join(f"{key}: {value}" for key, value in data.items()).encode()
        return str(data).encode()


class _Echo:
    """A file-like object whose write() returns the line: csv.writer into a streamed response."""

    def write(self, line: str) -> str:
        return line


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    """Runs, filterable with the filter language; each run's children, ancestors and subtree.
    `?format=csv` on the listing exports every matching run (not a page) as CSV."""

    serializer_class = RunSerializer
    lookup_field = "run_id"
    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, CSVRenderer]

    def get_queryset(self):
        return runs_for_listing(self._matching_runs())

    def _matching_runs(self):
        """The runs the query string asks for (filter, experiment, deleted or not), in order."""
        runs = Run.objects.all()
        params = self.request.query_params
        if params.get("show_deleted") not in ("1", "true"):
            runs = runs.active()
        if params.get("experiment_id"):
            runs = runs.filter(experiment_id=self._experiment_id(params["experiment_id"]))
        try:
            runs = runs_matching(runs, params.get("filter", ""))
            runs = order_runs(runs, params.getlist("order_by"))
        except TrackingError as error:
            raise TrackingAPIError(error) from None
        return runs

    @staticmethod
    def _experiment_id(raw: str) -> int:
        try:
            return int(raw)
        except ValueError:
            raise serializers.ValidationError({"experiment_id": f"must be an integer, got {raw!r}"}) from None

    def _run(self) -> Run:
        run = Run.objects.filter(run_id=self.kwargs["run_id"]).first()
        if run is None:
            raise NotFound(f"Run with id={self.kwargs['run_id']} not found")
        return run

    @extend_schema(parameters=FILTER_PARAMETERS)
    def list(self, request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            writer = csv.writer(_Echo())
            rows = export.runs_csv_rows(self._matching_runs())
            response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv")
            response["Content-Disposition"] = 'attachment; filename="runtree-runs.csv"'
            return response
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=RunSerializer(many=True))
    @action(detail=True)
    def children(self, request, run_id=None):
        """Direct children, newest first, paged."""
        children = Run.objects.children_of(self._run()).active().in_start_order()
        return self._paged(runs_for_listing(children))

    @extend_schema(responses=RunSerializer(many=True))
    @action(detail=True)
    def ancestors(self, request, run_id=None):
        """Every ancestor, root first."""
        ancestors = runs_for_listing(Run.objects.ancestors_of(self._run()))
        return Response(self.get_serializer(ancestors, many=True).data)

    @extend_schema(responses=RunSerializer(many=True))
    @action(detail=True)
    def subtree(self, request, run_id=None):
        """The run and every descendant, shallowest first, paged."""
        subtree = Run.objects.subtree_of(self._run()).active().order_by("depth", "-start_time", "run_id")
        return self._paged(runs_for_listing(subtree))

    @extend_schema(responses=RunSummarySerializer(many=True))
    @action(detail=True)
    def summary(self, request, run_id=None):
        """The run's best-child summary, one entry per metric its descendants logged."""
        run = self._run()
        rows = summary_reads.summaries_for([run.pk])[run.pk]
        for row in rows:
            row.run = run  # `stale` reads the run's flag without a query per row
        return Response(RunSummarySerializer(rows, many=True).data)

    def _paged(self, queryset):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
