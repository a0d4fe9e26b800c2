"""`manage.py gc` removes deleted logged models for good, with their files, as `mlflow gc`
does; a model that is not deleted, or deleted too recently for --older-than, stays."""

import io

import pytest
from django.core.management import call_command

from tracker import services
from tracker.models import LoggedModel, LoggedModelMetric, LoggedModelTag
from tracker.services import MetricInput, artifacts, logged_models

pytestmark = pytest.mark.django_db

NOW_MS = 1_900_000_000_000
DAY_MS = 86_400_000


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW_MS / 1000)


def model_with_files(run, name: str) -> LoggedModel:
    model = logged_models.logged_model_create(
        experiment=run.experiment, name=name, source_run=run, tags=[services.KeyValue("k", "v")]
    )
    services.run_log_metric(run=run, metric=MetricInput("acc", 0.9, 1, model_id=model.model_id))
    folder = artifacts.logged_model_artifact_path(model=model, path=None)
    artifacts.artifact_put(path=f"{folder}/MLmodel", body=io.BytesIO(b"flavors: {}"), content_length=11)
    return model


def deleted(model: LoggedModel, *, days_ago: int) -> LoggedModel:
    logged_models.logged_model_delete(model=model)
    LoggedModel.objects.filter(pk=model.pk).update(last_updated_time=NOW_MS - days_ago * DAY_MS)
    return model


def test_deleted_models_go_with_their_files_and_the_others_stay(artifact_root):
    run = services.run_create(experiment=services.experiment_create(name="gc"), name="trainer")
    old = deleted(model_with_files(run, "old"), days_ago=40)
    recent = deleted(model_with_files(run, "recent"), days_ago=1)
    kept = model_with_files(run, "kept")

    out = io.StringIO()
    call_command("gc", "--older-than", "30d", stdout=out)

    assert (
        f"Removed logged model {old.model_id} (old, experiment {run.experiment_id}): 1 artifact files."
        in out.getvalue()
    )
    assert set(LoggedModel.objects.values_list("name", flat=True)) == {"recent", "kept"}
    assert not LoggedModelTag.objects.filter(model_id=old.pk).exists()
    assert not LoggedModelMetric.objects.filter(model_id=old.pk).exists()
    remaining = sorted(str(p.relative_to(artifact_root)) for p in artifact_root.rglob("MLmodel"))
    assert remaining == sorted(f"{run.experiment_id}/models/{m.model_id}/artifacts/MLmodel" for m in (recent, kept))
    assert run.metrics.count() == 1  # the run keeps its one point (each model logged the same)
