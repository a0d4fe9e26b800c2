"""Write services for experiments: create, rename, delete or restore, tag and untag."""

from collections.abc import Iterable

from django.db import IntegrityError, transaction

from tracker import tasks
from tracker.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from tracker.goals import goal_metric
from tracker.models import DELETED, Experiment, ExperimentTag, Run
from tracker.services.validation import (
    KeyValue,
    check_experiment_active,
    check_experiment_name,
    check_experiment_tag,
)
from tracker.values import now_ms


def experiment_create(*, name: str, artifact_location: str = "", tags: Iterable[KeyValue] = ()) -> Experiment:
    name = check_experiment_name(name)
    tags = [check_experiment_tag(t.key, t.value) for t in tags]
    try:
        with transaction.atomic():
            if Experiment.objects.filter(name=name).exists():
                raise ResourceAlreadyExists(f"Experiment '{name}' already exists.")
            stamp = now_ms()
            experiment = Experiment.objects.create(
                name=name, artifact_location=artifact_location or "", creation_time=stamp, last_update_time=stamp
            )
            if not experiment.artifact_location:
                experiment.artifact_location = f"mlflow-artifacts:/{experiment.id}"
                experiment.save(update_fields=["artifact_location"])
            ExperimentTag.objects.bulk_create(
                [ExperimentTag(experiment=experiment, key=t.key, value=t.value) for t in tags]
            )
    except IntegrityError:
        # Two creators of one name (workers of a sweep calling set_experiment at once) both
        # passed the check above; the unique index let one through. The other is told what the
        # mlflow client expects, RESOURCE_ALREADY_EXISTS, and fetches the experiment.
        if Experiment.objects.filter(name=name).exists():
            raise ResourceAlreadyExists(f"Experiment '{name}' already exists.") from None
        raise
    return experiment


def experiment_rename(*, experiment: Experiment, new_name: str) -> Experiment:
    new_name = check_experiment_name(new_name)
    try:
        with transaction.atomic():
            check_experiment_active(experiment)
            if Experiment.objects.filter(name=new_name).exclude(pk=experiment.pk).exists():
                raise ResourceAlreadyExists(f"Experiment '{new_name}' already exists.")
            experiment.name = new_name
            experiment.last_update_time = now_ms()
            experiment.save(update_fields=["name", "last_update_time"])
    except IntegrityError:
        # Another rename or create took the name after the check (as in experiment_create).
        raise ResourceAlreadyExists(f"Experiment '{new_name}' already exists.") from None
    return experiment


def experiment_set_lifecycle(*, experiment: Experiment, stage: str) -> Experiment:
    """Delete or restore an experiment (soft, as MLflow): its runs follow."""
    if stage == DELETED and experiment.pk == 0:
        raise InvalidParameterValue("The Default experiment (id 0) cannot be deleted.")
    with transaction.atomic():
        experiment.lifecycle_stage = stage
        experiment.last_update_time = now_ms()
        experiment.save(update_fields=["lifecycle_stage", "last_update_time"])
        deleted_time = now_ms() if stage == DELETED else None
        Run.objects.filter(experiment=experiment).update(lifecycle_stage=stage, deleted_time=deleted_time)
    return experiment


def experiment_set_tag(*, experiment: Experiment, key: str, value: str) -> None:
    tag = check_experiment_tag(key, value)
    with transaction.atomic():
        check_experiment_active(experiment)
        ExperimentTag.objects.update_or_create(experiment=experiment, key=tag.key, defaults={"value": tag.value})
        Experiment.objects.filter(pk=experiment.pk).update(last_update_time=now_ms())
        if goal_metric(tag.key) is not None:
            # The metric's goal changed: every summary of the experiment is ranked again.
            tasks.mark_experiment_stale_and_queue(experiment=experiment)


def experiment_delete_tag(*, experiment: Experiment, key: str) -> None:
    """Remove a tag, as MLflow does: a tag that is not there is RESOURCE_DOES_NOT_EXIST."""
    with transaction.atomic():
        check_experiment_active(experiment)
        deleted, _ = ExperimentTag.objects.filter(experiment=experiment, key=key).delete()
        if not deleted:
            raise ResourceDoesNotExist(f"No tag with name: {key} in experiment with id {experiment.pk}")
        Experiment.objects.filter(pk=experiment.pk).update(last_update_time=now_ms())
        if goal_metric(key) is not None:
            # The metric's goal falls back to the one read off its name: rank every summary again.
            tasks.mark_experiment_stale_and_queue(experiment=experiment)
