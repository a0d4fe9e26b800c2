"""The native REST API (Django REST framework): what the dashboard's scripts and users' own
tools call when they are not MLflow-shaped. Reads only; writes go through the MLflow API."""

from django.db.models import Count, Prefetch, Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.settings import api_settings

from tracker.api.mlflow.json import parse_experiment_id
from tracker.api.native.errors import NativeAPIMixin, TrackingAPIError
from tracker.api.native.exports import SUMMARY_COLUMNS, CSVRenderer, csv_response, summary_csv_rows
from tracker.api.native.parameters import boolean_parameter, choice_parameter, refuse_unknown
from tracker.errors import InvalidParameterValue, TrackingError
from tracker.filtering import order_runs
from tracker.models import ACTIVE, Experiment, LatestMetric, Param, Run, RunSummary, RunTag
from tracker.selectors import export
from tracker.selectors.runs import runs_matching
from tracker.summaries import reads as summary_reads
from tracker.values import json_number

# JSON has no NaN or infinity, and DRF's strict renderer refuses them (a run with an infinite
# metric was a 500). The native API writes them as tracker.values.json_number says.
NON_FINITE_SCHEMA = {
    "oneOf": [{"type": "number"}, {"type": "string", "enum": ["Infinity", "-Infinity"]}],
    "nullable": True,
    "description": 'A number; "Infinity" or "-Infinity" for an infinite value, null for NaN.',
}


@extend_schema_field(NON_FINITE_SCHEMA)
class NonFiniteFloatField(serializers.FloatField):
    """A float column as json_number writes it."""

    def to_representation(self, value):
        return json_number(value)


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

    @extend_schema_field({"type": "object", "additionalProperties": NON_FINITE_SCHEMA})
    def get_metrics(self, run) -> dict[str, float | str | None]:
        return {metric.key: json_number(metric.value) for metric in run.latest_metrics.all()}

    def get_tags(self, run) -> dict[str, str]:
        return {tag.key: tag.value for tag in run.tags.all()}


class RunSummarySerializer(serializers.ModelSerializer):
    """One metric of a parent's best-child summary (best over the subtree; stats over children)."""

    best_run_id = serializers.CharField(source="best_run.run_id", default=None)
    best_run_name = serializers.CharField(source="best_run.name", default=None)
    best_value = NonFiniteFloatField()
    min_value = NonFiniteFloatField()
    max_value = NonFiniteFloatField()
    mean_value = NonFiniteFloatField()
    std_value = NonFiniteFloatField()
    stale = serializers.BooleanField(source="run.summary_stale")

    class Meta:
        model = RunSummary
        # The CSV export's columns (one place), and the best run's params, which it spreads out.
        fields = [*SUMMARY_COLUMNS, "best_params"]


def runs_for_listing(queryset):
    """Runs with what the serializer reads: one query each for params, latest metrics, tags."""
    return queryset.with_child_count().prefetch_related(
        Prefetch("params", queryset=Param.objects.order_by("key")),
        Prefetch("latest_metrics", queryset=LatestMetric.objects.order_by("key")),
        Prefetch("tags", queryset=RunTag.objects.order_by("key")),
    )


class NativeViewSet(NativeAPIMixin, viewsets.ReadOnlyModelViewSet):
    """A read of the native API: its errors in the one shape, and a parameter it does not take
    refused rather than ignored."""

    # The query parameters each action takes besides `format`, as its schema declares them.
    parameters: dict[str, frozenset[str]] = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.action in self.parameters:
            refuse_unknown(request.query_params, self.parameters[self.action], request.path)


PAGING = frozenset({"limit", "offset"})
VIEW_TYPES = ("active", "all")
VIEW_TYPE = OpenApiParameter(
    "view_type", OpenApiTypes.STR, enum=VIEW_TYPES, default="active", description="all: deleted experiments too"
)


@extend_schema_view(list=extend_schema(parameters=[VIEW_TYPE]), retrieve=extend_schema(parameters=[VIEW_TYPE]))
class ExperimentViewSet(NativeViewSet):
    """Experiments, active ones unless `?view_type=all`."""

    serializer_class = ExperimentSerializer
    parameters = {"list": PAGING | {"view_type"}, "retrieve": frozenset({"view_type"})}

    def get_queryset(self):
        active_runs = Count("runs", filter=Q(runs__lifecycle_stage=ACTIVE))
        experiments = Experiment.objects.annotate(run_count=active_runs).prefetch_related("tags").order_by("id")
        if choice_parameter(self.request.query_params, "view_type", VIEW_TYPES) == "active":
            experiments = experiments.active()
        return experiments


SHOW_DELETED = OpenApiParameter("show_deleted", OpenApiTypes.BOOL, default=False)
FILTER_PARAMETERS = [
    OpenApiParameter(
        "filter", OpenApiTypes.STR, description="Filter language, e.g. tags.team = 'a' OR metrics.loss < 0.1"
    ),
    OpenApiParameter("order_by", OpenApiTypes.STR, many=True, description="e.g. metrics.loss DESC (repeatable)"),
    OpenApiParameter("experiment_id", OpenApiTypes.INT),
    SHOW_DELETED,
]


def json_or_csv(serializer) -> dict:
    """A run read's responses in the schema: JSON, or with `?format=csv` the same rows as a CSV
    file (every one, not a page)."""
    return {(200, "application/json"): serializer, (200, "text/csv"): OpenApiTypes.STR}


MATCHING = frozenset({"filter", "order_by", "experiment_id", "show_deleted"})


class RunViewSet(NativeViewSet):
    """Runs, filterable with the filter language; each run's children, ancestors, subtree and
    summary. `?format=csv` on any of them exports every row (not a page) as CSV."""

    serializer_class = RunSerializer
    lookup_field = "run_id"
    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, CSVRenderer]
    parameters = {
        "list": MATCHING | PAGING,
        "retrieve": frozenset({"show_deleted"}),
        "children": MATCHING | PAGING,
        "subtree": PAGING,
        "ancestors": frozenset(),
        "summary": frozenset(),
    }

    def get_queryset(self):
        return runs_for_listing(self._matching(Run.objects.all()))

    def _matching(self, runs):
        """Those of `runs` the query string asks for (filter, experiment, deleted or not), in order."""
        params = self.request.query_params
        if not boolean_parameter(params, "show_deleted"):
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
            return parse_experiment_id(raw, "experiment_id")
        except InvalidParameterValue as error:
            raise TrackingAPIError(error) from None

    def _run(self, runs=Run.objects) -> Run:
        """The run of the URL, among `runs`; a 404 if it is not there."""
        run = runs.filter(run_id=self.kwargs["run_id"]).first()
        if run is None:
            raise NotFound(f"Run with id={self.kwargs['run_id']} not found")
        return run

    @extend_schema(parameters=FILTER_PARAMETERS, responses=json_or_csv(RunSerializer(many=True)))
    def list(self, request, *args, **kwargs):
        return self._runs(self._matching(Run.objects.all()), "runtree-runs.csv")

    @extend_schema(parameters=[SHOW_DELETED], responses=json_or_csv(RunSerializer))
    def retrieve(self, request, run_id=None):
        if self._csv:
            run = self._run(self._matching(Run.objects.all()))
            return csv_response(export.runs_csv_rows(Run.objects.filter(pk=run.pk)), f"runtree-run-{run_id}.csv")
        return Response(self.get_serializer(self._run(self.get_queryset())).data)

    @extend_schema(parameters=FILTER_PARAMETERS, responses=json_or_csv(RunSerializer(many=True)))
    @action(detail=True)
    def children(self, request, run_id=None):
        """Direct children, newest first (or in `order_by`'s order), paged; `filter` narrows them."""
        run = self._run()
        return self._runs(self._matching(Run.objects.children_of(run)), f"runtree-{run.run_id}-children.csv")

    @extend_schema(responses=json_or_csv(RunSerializer(many=True)))
    @action(detail=True, pagination_class=None)
    def ancestors(self, request, run_id=None):
        """Every ancestor, root first: a list, not paged (one per level of the tree)."""
        run = self._run()
        return self._runs(Run.objects.ancestors_of(run), f"runtree-{run.run_id}-ancestors.csv")

    @extend_schema(responses=json_or_csv(RunSerializer(many=True)))
    @action(detail=True)
    def subtree(self, request, run_id=None):
        """The run and every descendant, shallowest first, paged."""
        run = self._run()
        subtree = Run.objects.subtree_of(run).active().order_by("depth", "-start_time", "run_id")
        return self._runs(subtree, f"runtree-{run.run_id}-subtree.csv")

    @extend_schema(responses=json_or_csv(RunSummarySerializer(many=True)))
    @action(detail=True, pagination_class=None)
    def summary(self, request, run_id=None):
        """The run's best-child summary, one entry per metric its descendants logged: a list, not
        paged (one per metric key)."""
        run = self._run()
        rows = summary_reads.summaries_for([run.pk])[run.pk]
        if self._csv:
            return csv_response(summary_csv_rows(rows, stale=run.summary_stale), f"runtree-{run.run_id}-summary.csv")
        for row in rows:
            row.run = run  # `stale` reads the run's flag without a query per row
        return Response(RunSummarySerializer(rows, many=True).data)

    @property
    def _csv(self) -> bool:
        return self.request.accepted_renderer.format == CSVRenderer.format

    def _runs(self, runs, csv_filename: str):
        """`runs` as CSV (every one), or in JSON: a page, or all of them where the action is not paged."""
        if self._csv:
            return csv_response(export.runs_csv_rows(runs), csv_filename)
        runs = runs_for_listing(runs)
        if self.paginator is None:
            return Response(self.get_serializer(runs, many=True).data)
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
