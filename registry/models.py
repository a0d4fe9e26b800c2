"""The model registry: named models, their numbered versions, aliases and tags.

A version points at its source (a `models:/<model_id>`, `runs:/` or `mlflow-artifacts:` URI)
and keeps the run it came from as a nullable link plus the run id as text, so deleting the run
leaves the version readable ("its source is gone") instead of deleting it or failing.
Times are epoch milliseconds, as MLflow sends and expects them.
"""

from django.db import models
from django.db.models import Exists, OuterRef, Subquery

from registry.validation import (
    LATEST_ALIAS,
    STAGE_NONE,
    STAGES,
    VERSION_NUMBERS,
    check_alias,
    check_model_name,
    check_version,
)
from tracker.errors import InvalidParameterValue, ResourceDoesNotExist
from tracker.models import Run


class RegisteredModelQuerySet(models.QuerySet):
    def get_by_name(self, name: str) -> "RegisteredModel":
        """The model with this name, or ResourceDoesNotExist (a malformed name is refused first)."""
        check_model_name(name)
        try:
            return self.get(name=name)
        except self.model.DoesNotExist:
            raise ResourceDoesNotExist(f"Registered Model with name={name} not found") from None


class RegisteredModel(models.Model):
    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True, default="")
    creation_time = models.BigIntegerField()
    last_updated_time = models.BigIntegerField()
    # The number the next version gets. Only ever incremented, so a deleted version's number is
    # never given again (MLflow keeps deleted versions as hidden rows for the same reason).
    next_version = models.PositiveIntegerField(default=1)

    objects = RegisteredModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class RegisteredModelTag(models.Model):
    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["registered_model", "key"], name="uniq_registered_model_tag")]


class ModelVersionStatus(models.TextChoices):
    # Runtree registers a version at once (the files stay where the run or logged model put them),
    # so READY is the only status it gives; the others exist for imported versions.
    PENDING_REGISTRATION = "PENDING_REGISTRATION"
    FAILED_REGISTRATION = "FAILED_REGISTRATION"
    READY = "READY"


class ModelVersionQuerySet(models.QuerySet):
    def get_by_number(self, name: str, version) -> "ModelVersion":
        """Version `version` of the model named `name`, or ResourceDoesNotExist."""
        check_model_name(name)
        number = check_version(version)
        missing = ResourceDoesNotExist(f"Model Version (name={name}, version={number}) not found")
        if number not in VERSION_NUMBERS:  # 0 or -1 is never stored; past the column's range a query would fail
            raise missing
        try:
            return self.select_related("registered_model").get(registered_model__name=name, version=number)
        except self.model.DoesNotExist:
            raise missing from None

    def get_by_alias(self, name: str, alias: str) -> "ModelVersion":
        """The version `name@alias` points at; `@latest` is the highest version, as in MLflow."""
        model = RegisteredModel.objects.get_by_name(name)
        alias = check_alias(alias)
        versions = self.select_related("registered_model").filter(registered_model=model)
        if alias.lower() == LATEST_ALIAS:
            version = versions.order_by("-version").first()
            if version is None:
                raise ResourceDoesNotExist(f"Latest version not found for model {name}.")
            return version
        version = versions.filter(aliases__alias=alias).first()
        if version is None:
            # MLflow answers INVALID_PARAMETER_VALUE here, not RESOURCE_DOES_NOT_EXIST.
            raise InvalidParameterValue(f"Registered model alias {alias} not found.")
        return version

    def latest_per_stage(self):
        """For each model, its highest version in each stage (what MLflow calls latest_versions)."""
        newer = ModelVersion.objects.filter(
            registered_model=OuterRef("registered_model"), stage=OuterRef("stage"), version__gt=OuterRef("version")
        )
        return self.filter(~Exists(newer))

    def by_first_version_in_stage(self):
        """Ordered as MLflow's get_registered_model and get_latest_versions list the latest
        versions: each stage where its oldest version comes (its store walks a model's versions
        oldest first, keeping the newest per stage in a dict, which keeps a stage where it first
        saw it). So [v1 Production, v2 Staging, v3 None], but [v3 None, v2 Production] when v1 is
        in None too."""
        oldest = ModelVersion.objects.filter(
            registered_model=OuterRef("registered_model"), stage=OuterRef("stage")
        ).order_by("version")
        return self.annotate(first_in_stage=Subquery(oldest.values("version")[:1])).order_by("first_in_stage")

    def from_runs(self, run_pks):
        """Versions registered from these runs, model and aliases at hand, oldest first."""
        return self._for_labels(self.filter(source_run__in=run_pks))

    def from_logged_models(self, model_ids):
        """Versions registered from these MLflow 3 logged models, as from_runs()."""
        return self._for_labels(self.filter(model_id__in=model_ids))

    @staticmethod
    def _for_labels(versions):
        return (
            versions.select_related("registered_model")
            .prefetch_related("aliases")
            .order_by("registered_model__name", "version")
        )


class ModelVersion(models.Model):
    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    source = models.TextField()
    # Where the files are, resolved once at registration (a `models:/<id>` source's logged-model
    # folder): get-download-uri and `models:/name/1` read it without asking the tracking side.
    storage_location = models.TextField(blank=True, default="")
    # The run it came from. Not `run`: that would make `run_id` the integer link, and `run_id`
    # here is MLflow's 32-hex id as the client sent it, kept when the run is purged so the page
    # can say which run is gone.
    source_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions")
    run_id = models.CharField(max_length=32, blank=True, default="")
    run_link = models.TextField(blank=True, default="")
    # The MLflow 3 logged model this version was made from, if any.
    model_id = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=24, choices=ModelVersionStatus.choices, default=ModelVersionStatus.READY)
    status_message = models.TextField(blank=True, default="")
    stage = models.CharField(max_length=16, choices=[(stage, stage) for stage in STAGES], default=STAGE_NONE)
    description = models.TextField(blank=True, default="")
    user_id = models.CharField(max_length=250, blank=True, default="")
    creation_time = models.BigIntegerField()
    last_updated_time = models.BigIntegerField()

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["registered_model", "-version"]
        constraints = [models.UniqueConstraint(fields=["registered_model", "version"], name="uniq_model_version")]
        indexes = [
            # latest_per_stage(): the newest version of a model in a stage.
            models.Index(fields=["registered_model", "stage", "version"], name="model_version_stage_idx"),
            # search_model_versions("run_id = '...'").
            models.Index(fields=["run_id"], name="model_version_run_id_idx"),
            # A logged model's page and its experiment's models page: the versions made from it.
            models.Index(fields=["model_id"], name="model_version_model_id_idx"),
        ]

    def __str__(self):
        return f"{self.registered_model.name} v{self.version}"

    @property
    def run_gone(self) -> bool:
        """Registered from a run that has been deleted since (or removed for good). Reads
        `source_run`: select it with the versions."""
        return bool(self.run_id) and (self.source_run is None or self.source_run.is_deleted)


class ModelVersionTag(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="uniq_model_version_tag")]


class RegisteredModelAlias(models.Model):
    """`@champion` -> a version. Deleting the version deletes its aliases, as in MLflow."""

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=255)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        ordering = ["alias"]
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "alias"], name="uniq_registered_model_alias")
        ]
