"""The tracking domain: experiments, runs in a hierarchy, and what runs log.

Times are epoch milliseconds, as MLflow sends and expects them.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Substr

from tracker.errors import ResourceDoesNotExist
from tracker.values import duration_ms, read_value

ACTIVE = "active"
DELETED = "deleted"
LIFECYCLE_CHOICES = [(ACTIVE, "active"), (DELETED, "deleted")]

# The first characters of a param/tag value that the (key, value) indexes cover. Values are
# stored in full (up to the request limit), but a B-tree entry must stay small, so equality
# filters match on this prefix (indexed) *and* on the full value.
INDEXED_VALUE_CHARS = 200

# A materialized path is the run's ancestors' ids and its own, each as a fixed-width segment,
# so "the whole subtree" is one indexed prefix match and "all ancestors" one `id IN (...)`.
PATH_SEGMENT_WIDTH = 12
PATH_SEPARATOR = "/"


# The first segment of a run's materialized path: its root's pk, as text. (Not cast to a
# number: an index on it is computed for every row written, and a run is written before it is
# placed, with an empty path.)
ROOT_SEGMENT = Substr("path", 1, PATH_SEGMENT_WIDTH)


def path_segment(run_pk: int) -> str:
    return f"{run_pk:0{PATH_SEGMENT_WIDTH}d}{PATH_SEPARATOR}"


def path_ids(path: str) -> list[int]:
    return [int(part) for part in path.split(PATH_SEPARATOR) if part]


def new_run_id() -> str:
    return uuid.uuid4().hex


class ExperimentQuerySet(models.QuerySet):
    def active(self):
        """Experiments not deleted."""
        return self.filter(lifecycle_stage=ACTIVE)

    def get_by_name(self, name: str) -> "Experiment":
        """The experiment with this name, or ResourceDoesNotExist."""
        try:
            return self.get(name=name)
        except self.model.DoesNotExist:
            raise ResourceDoesNotExist(f"Could not find experiment with name '{name}'") from None


class Experiment(models.Model):
    # Experiment 0 ("Default") comes from a data migration, as MLflow clients expect it.
    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=500, unique=True)
    artifact_location = models.TextField(blank=True, default="")
    lifecycle_stage = models.CharField(max_length=16, choices=LIFECYCLE_CHOICES, default=ACTIVE)
    creation_time = models.BigIntegerField()
    last_update_time = models.BigIntegerField()

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.name

    @property
    def is_deleted(self) -> bool:
        return self.lifecycle_stage == DELETED

    def tag_dict(self) -> dict[str, str]:
        return {tag.key: tag.value for tag in self.tags.all()}


class ExperimentTag(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "key"], name="uniq_experiment_tag")]


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class RunQuerySet(models.QuerySet):
    def active(self):
        """Runs not deleted."""
        return self.filter(lifecycle_stage=ACTIVE)

    def in_experiment(self, experiment):
        """Runs of one experiment (an instance or an id)."""
        return self.filter(experiment=experiment)

    def roots(self):
        """Runs shown at the top of a tree: no parent, or a parent that is not known yet."""
        return self.filter(parent__isnull=True)

    def children_of(self, run):
        """Direct children of `run`."""
        return self.filter(parent=run)

    def ancestors_of(self, run):
        """All ancestors of `run`, root first: one query, read off the materialized path."""
        return self.filter(pk__in=path_ids(run.path)[:-1]).order_by("depth")

    def subtree_of(self, run, *, include_self=True):
        """`run` and every descendant at any depth: one indexed prefix match on the path."""
        queryset = self.filter(path__startswith=run.path)
        return queryset if include_self else queryset.exclude(pk=run.pk)

    def in_start_order(self):
        """Newest first, as MLflow lists runs; ties broken by run id so paging is stable."""
        return self.order_by("-start_time", "run_id")

    def with_child_count(self, *, include_deleted=False):
        """Annotate `child_count`: the number of direct children (one correlated subquery)."""
        children = Run.objects.filter(parent=OuterRef("pk"))
        if not include_deleted:
            children = children.filter(lifecycle_stage=ACTIVE)
        counted = children.order_by().values("parent").annotate(n=Count("pk")).values("n")
        return self.annotate(child_count=Coalesce(Subquery(counted, output_field=models.IntegerField()), 0))


class Run(models.Model):
    id = models.BigAutoField(primary_key=True)
    # MLflow's 32-hex run id; kept as given on import so MLflow ids survive.
    run_id = models.CharField(max_length=32, unique=True, default=new_run_id)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=500, blank=True, default="")
    user_id = models.CharField(max_length=250, blank=True, default="")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    start_time = models.BigIntegerField(null=True, blank=True)
    end_time = models.BigIntegerField(null=True, blank=True)
    lifecycle_stage = models.CharField(max_length=16, choices=LIFECYCLE_CHOICES, default=ACTIVE)
    deleted_time = models.BigIntegerField(null=True, blank=True)
    artifact_uri = models.TextField(blank=True, default="")

    # The hierarchy. `parent_run_id` is the value of the mlflow.parentRunId tag as the client
    # sent it; `parent` is the real link, set once that run is known. A run whose parent_run_id
    # is set but whose parent is null is a root marked "parent missing".
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    parent_run_id = models.CharField(max_length=32, blank=True, default="")
    depth = models.PositiveIntegerField(default=0)
    path = models.CharField(max_length=1000, db_index=False, default="")
    # Set by any write below this run that can change its best-child summary; cleared by the
    # refresh (tracker/summaries/). `summary_queued` coalesces refreshes: one queued task per tree.
    summary_stale = models.BooleanField(default=False)
    summary_queued = models.BooleanField(default=False)

    objects = RunQuerySet.as_manager()

    class Meta:
        indexes = [
            # The tree page's expand: children of a parent in start-time order.
            models.Index(fields=["parent", "-start_time"], name="run_children_idx"),
            # An experiment's latest runs (the column choices' sample).
            models.Index(fields=["experiment", "-start_time"], name="run_experiment_start_idx"),
            # (runs/search's order has an index on PostgreSQL only: migration 0007. The tree page's
            # roots in its order have a partial index of their own: migration 0018.)
            # Subtree reads: prefix match on the materialized path. On PostgreSQL the pattern
            # opclass lets LIKE 'prefix%' use the index whatever the collation.
            models.Index(fields=["path"], name="run_path_idx", opclasses=["varchar_pattern_ops"]),
            # The periodic repair's scan for stale summaries.
            models.Index(fields=["summary_stale"], name="run_summary_stale_idx", condition=Q(summary_stale=True)),
            # The live pages' change markers (tracker/hot_sql.py live_version): the newest run, the
            # running and the deleted runs of an experiment, each without reading its other runs.
            models.Index(fields=["experiment", "id"], name="run_experiment_id_idx"),
            models.Index(fields=["experiment"], name="run_running_idx", condition=Q(status=RunStatus.RUNNING)),
            models.Index(fields=["experiment"], name="run_deleted_idx", condition=Q(lifecycle_stage=DELETED)),
            # The runs of one tree by its root: under a broad filter the tree page asks of each
            # root in turn whether its tree holds a match (tracker/selectors/tree.py,
            # _BroadMatches), an EXISTS that stops at the first match. A prefix match on the path
            # cannot serve it: the prefix comes from the outer row, and PostgreSQL uses an index
            # for LIKE only when the pattern is a constant.
            models.Index(ROOT_SEGMENT, name="run_root_idx"),
            # `tags.mlflow.parentRunId = …`, the sweep's own search (tracker/filtering/), and
            # orphans waiting for their parent to arrive.
            models.Index(fields=["parent_run_id"], name="run_parent_run_id_all_idx"),
        ]

    def __str__(self):
        return self.name or self.run_id

    @property
    def is_deleted(self) -> bool:
        return self.lifecycle_stage == DELETED

    @property
    def parent_missing(self) -> bool:
        return bool(self.parent_run_id) and self.parent_id is None

    @property
    def duration_ms(self) -> int | None:
        return duration_ms(self.start_time, self.end_time)

    @property
    def root_pk(self) -> int:
        return path_ids(self.path)[0]


class Param(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_run_param")]
        indexes = [
            # Filters `params.k = 'v'`; see INDEXED_VALUE_CHARS.
            models.Index(F("key"), Substr("value", 1, INDEXED_VALUE_CHARS), name="param_key_value_idx"),
        ]


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_run_tag")]
        indexes = [
            # Filters `tags.k = 'v'` and the tag chips; see INDEXED_VALUE_CHARS.
            models.Index(F("key"), Substr("value", 1, INDEXED_VALUE_CHARS), name="tag_key_value_idx"),
        ]


class MetricValueMixin:
    """NaN is stored as NULL (tracker/values.py)."""

    @property
    def float_value(self) -> float:
        return read_value(self.value)


class Metric(MetricValueMixin, models.Model):
    """One point of a run's metric history. A point is stored once: a retried write, or
    `log_model` re-logging the run's metrics for its model, sends a point already here, and
    the write path skips it (MLflow's store does the same; its key is the run, key, timestamp,
    step and value). The model and dataset a point was first logged with are kept with it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    key = models.CharField(max_length=250)
    value = models.FloatField(null=True)
    timestamp = models.BigIntegerField()
    step = models.BigIntegerField(default=0)
    # MLflow 3: the logged model and the dataset the value was measured for, when the client
    # says. NULL is "not sent" (protobuf's unset field), as for nearly every point; NULL rather
    # than '' because the COPY path writes an empty CSV field as NULL.
    model_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    dataset_name = models.CharField(max_length=500, null=True, blank=True)  # noqa: DJ001
    dataset_digest = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        constraints = [
            # One row per point. Its index also serves get-history and the history charts (one
            # run's key in step order), so it replaced the plain index those used.
            models.UniqueConstraint(fields=["run", "key", "step", "timestamp", "value"], name="uniq_metric_point"),
            # A NaN is stored as NULL, and NULLs never collide in a unique index: NaN points
            # get their own (small, partial) one.
            models.UniqueConstraint(
                fields=["run", "key", "step", "timestamp"],
                condition=Q(value__isnull=True),
                name="uniq_metric_nan_point",
            ),
        ]
        indexes = [
            # The few points logged with a dataset: the compare page looks among a selection's
            # points for keys logged on several datasets, and finds there are none by a probe
            # per run of this small index rather than by reading every point.
            models.Index(
                fields=["run", "key", "dataset_name"],
                condition=Q(dataset_name__isnull=False),
                name="metric_dataset_point_idx",
            ),
        ]


class LatestMetric(MetricValueMixin, models.Model):
    """One row per run and key: MLflow's "latest" value (highest step, then latest timestamp,
    then highest value), kept by the write path for filtering and sorting at scale."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="latest_metrics")
    key = models.CharField(max_length=250)
    value = models.FloatField(null=True)
    timestamp = models.BigIntegerField()
    step = models.BigIntegerField(default=0)

    class Meta:
        # On PostgreSQL this index also carries the value (migration 0012): a metric bound is
        # checked from it alone.
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_latest_metric")]
        indexes = [
            # Filters and sorts on `metrics.k`.
            models.Index(fields=["key", "value"], name="latest_metric_key_value_idx"),
        ]


class Goal(models.TextChoices):
    MIN = "min"
    MAX = "max"


SUMMARY_KEY_LENGTH = 500


class RunSummary(models.Model):
    """A parent's best-child summary for one metric key, kept by tracker/summaries/.

    `best_*` covers the whole subtree (through the children's own summaries); count, min, max,
    mean and std cover the direct children's own latest values."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="summaries")
    # A metric key, or one dataset's series of it ("accuracy · test": tracker/series.py), which
    # takes more than a key's 250 characters; no more than this, so that a key in the unique
    # index stays under PostgreSQL's 2,704 bytes of a btree entry at 4 bytes a character.
    key = models.CharField(max_length=SUMMARY_KEY_LENGTH)
    goal = models.CharField(max_length=3, choices=Goal.choices, default=Goal.MIN)
    best_value = models.FloatField(null=True)
    best_run = models.ForeignKey(Run, null=True, on_delete=models.SET_NULL, related_name="+")
    best_params = models.JSONField(default=dict)
    count = models.PositiveIntegerField(default=0)
    min_value = models.FloatField(null=True)
    max_value = models.FloatField(null=True)
    mean_value = models.FloatField(null=True)
    std_value = models.FloatField(null=True)
    computed_at = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_run_summary")]
        indexes = [
            # Filters and sorts on `summary.k` (the best value in a subtree).
            models.Index(fields=["key", "best_value"], name="summary_key_best_idx"),
        ]


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        """Tokens not revoked."""
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A bearer token for the APIs (tracker/web/auth.py). Only its SHA-256 digest is stored: the
    token itself is shown once, when `manage.py createtoken` makes it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    # The token's first characters, kept in clear so a person can name a token to revoke it.
    prefix = models.CharField(max_length=8)
    # Every API request looks its token up by this digest.
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self):
        return f"{self.prefix}… ({self.user})"


# --- MLflow 3: logged models and datasets --------------------------------------------------------


def new_model_id() -> str:
    """MLflow 3's logged-model id: `m-` and 32 hex digits."""
    return f"m-{uuid.uuid4().hex}"


class LoggedModelStatus(models.TextChoices):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


class LoggedModelQuerySet(models.QuerySet):
    def active(self):
        """Logged models not deleted."""
        return self.filter(lifecycle_stage=ACTIVE)

    def get_by_model_id(self, model_id, *, allow_deleted: bool = False) -> "LoggedModel":
        """The logged model with this id, or ResourceDoesNotExist (a deleted one too, unless
        `allow_deleted`), as MLflow answers."""
        found = self.filter(model_id=model_id) if isinstance(model_id, str) and model_id else self.none()
        if not allow_deleted:
            found = found.active()
        model = found.first()
        if model is None:
            raise ResourceDoesNotExist(f"Logged model with ID '{model_id}' not found.")
        return model


class LoggedModel(models.Model):
    """An MLflow 3 logged model: what `log_model` makes, with its own artifacts, tags, params
    and metrics, linked to the run that produced it (its source run)."""

    model_id = models.CharField(max_length=64, unique=True, default=new_model_id)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="logged_models")
    # Null for a model made outside a run, or whose run was removed for good (`manage.py gc`).
    source_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="logged_models")
    name = models.CharField(max_length=500)
    model_type = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=16, choices=LoggedModelStatus.choices, default=LoggedModelStatus.PENDING)
    status_message = models.TextField(blank=True, default="")
    # mlflow-artifacts:/<experiment>/models/<model_id>/artifacts
    artifact_location = models.TextField()
    lifecycle_stage = models.CharField(max_length=16, choices=LIFECYCLE_CHOICES, default=ACTIVE)
    creation_time = models.BigIntegerField()
    last_updated_time = models.BigIntegerField()

    objects = LoggedModelQuerySet.as_manager()

    class Meta:
        indexes = [
            # search_logged_models: an experiment's models, newest first.
            models.Index(fields=["experiment", "-creation_time"], name="logged_model_exp_created_idx"),
            # `runs:/<run_id>/<name>` is resolved by a search for the name within the experiment.
            models.Index(fields=["experiment", "name"], name="logged_model_exp_name_idx"),
        ]

    def __str__(self):
        return f"{self.name} ({self.model_id})"

    @property
    def is_deleted(self) -> bool:
        return self.lifecycle_stage == DELETED


class LoggedModelTag(models.Model):
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="uniq_logged_model_tag")]


class LoggedModelParam(models.Model):
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="uniq_logged_model_param")]


class LoggedModelMetric(MetricValueMixin, models.Model):
    """A metric point logged for a model (a metric write that names a `model_id`). The run's
    history keeps the point once; the model keeps its own copy, so several models logged at
    one step each get the run's metrics, as in MLflow."""

    # No index of its own: the two below lead with the model and serve its lookups; a third made
    # PostgreSQL read a page's points through it and sort them (182 ms against 36, bench/logged_models.py).
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="metrics", db_index=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=250)
    value = models.FloatField(null=True)
    timestamp = models.BigIntegerField()
    step = models.BigIntegerField(default=0)
    # As on Metric: NULL when the client named no dataset.
    dataset_name = models.CharField(max_length=500, null=True, blank=True)  # noqa: DJ001
    dataset_digest = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        # MLflow's key for a model's metric point; a retried write is skipped on it.
        constraints = [
            models.UniqueConstraint(
                fields=["model", "key", "step", "timestamp", "run"], name="uniq_logged_model_metric"
            )
        ]
        indexes = [
            # The model pages: each model's latest point per metric and dataset, read newest
            # first per series, with no sort (a page of 50 models, 20 of them checkpoints of
            # 6,000 points each: 302 → 36 ms).
            models.Index(
                fields=["model", "key", "dataset_name", "dataset_digest", "-timestamp", "-step"],
                name="logged_model_metric_latest_idx",
            )
        ]


class Dataset(models.Model):
    """A dataset as `mlflow.log_input` describes it: one row per experiment, name and digest,
    shared by every run that used it."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=500)
    digest = models.CharField(max_length=64)
    source_type = models.CharField(max_length=64)
    source = models.TextField()
    schema = models.TextField(blank=True, default="")
    profile = models.TextField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "name", "digest"], name="uniq_experiment_dataset")]

    def __str__(self):
        return f"{self.name} ({self.digest})"


class RunDatasetInput(models.Model):
    """A dataset a run used, with the input's tags as MLflow sends them (a list of
    {"key", "value"}; `mlflow.data.context` says training, validation, ...)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="dataset_inputs")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="run_inputs")
    tags = models.JSONField(default=list)
    # The `mlflow.data.context` tag's value, also kept as a column so the filter language's
    # `datasets.context` compares it in SQL on both databases (SQLite cannot look inside a JSON
    # list with LIKE). NULL when the input has no context. Set only by tracker/services/datasets.py.
    context = models.CharField(max_length=500, null=True, blank=True)  # noqa: DJ001 - NULL: no context, "" an empty one

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "dataset"], name="uniq_run_dataset_input")]


class RunModelInput(models.Model):
    """A logged model a run used (evaluated, fine-tuned, ...)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="model_inputs")
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="run_inputs")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "model"], name="uniq_run_model_input")]


class RunModelOutput(models.Model):
    """A logged model a run produced, at the step it was logged at (`log_model(step=...)`)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="model_outputs")
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="run_outputs")
    step = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "model"], name="uniq_run_model_output")]


class ChildBands(models.Model):
    """A parent's band charts' data, kept by tracker/summaries/bands.py in a Celery task once the
    parent's summaries have settled (never in a page request): its children aggregated by step,
    per metric they log with a history. A page serves them while `version` is the newest
    `computed_at` of the parent's summaries, so they are never older than the summary beside
    them; otherwise it aggregates itself.

    `bands` is a list, one per metric in key order, of tracker.summaries.bands.Band as a dict:
    {"key", "bucket" (steps a point), "steps", "count", "mean", "std", "low", "high", "q1",
    "median", "q3"}, the lists one entry a point."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="child_bands")
    bands = models.JSONField(default=list)
    version = models.BigIntegerField()
    computed_at = models.BigIntegerField()


class ParamImportance(models.Model):
    """How much each param of a parent's children drives one metric of theirs, kept by
    tracker/summaries/importance.py in a Celery task beside the summaries (never in a page request).

    `params` is a list, most important first, of {"param", "importance" (share of the
    permutation importance, 0–1), "spread" (its std over the repeats, same scale),
    "correlation" (Spearman's rho of a numeric param with the metric, null for a categorical
    one), "kind" ("numeric"/"categorical"), "log" (values spanning 3+ decades, fitted as log10)}."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="param_importances")
    key = models.CharField(max_length=SUMMARY_KEY_LENGTH)  # a key, or one dataset's series of it
    params = models.JSONField(default=list)
    children = models.PositiveIntegerField(default=0)  # children with a finite value of the metric
    # What the fit saw (children, their params and latest values): an unchanged sweep is not refitted.
    fingerprint = models.CharField(max_length=64, default="")
    computed_at = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_param_importance")]
