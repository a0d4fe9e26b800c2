"""`manage.py gc`: deleted runs go for good, with everything they logged and their artifacts;
runs that are not deleted, and deleted runs above them, stay exactly as they were."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.factories import ExperimentFactory, RunFactory
from tracker import services
from tracker.models import DELETED, Metric, Param, Run, RunTag
from tracker.services import KeyValue, MetricInput
from tracker.services.artifacts import artifact_put

pytestmark = pytest.mark.django_db

DAY_MS = 86_400_000


def logged_run(experiment, *, parent=None, name="run"):
    run = RunFactory(experiment=experiment, parent=parent, name=name)
    services.run_log_batch(
        run=run,
        metrics=[MetricInput("loss", 0.5, 1, 0), MetricInput("loss", 0.4, 2, 1)],
        params=[KeyValue("lr", "0.1")],
        tags=[KeyValue("team", "a")],
    )
    data = b"weights"
    artifact_put(path=f"{experiment.id}/{run.run_id}/artifacts/model/w.bin", body=io.BytesIO(data), content_length=7)
    return run


def delete(run, *, days_ago: float = 0):
    Run.objects.filter(pk=run.pk).update(
        lifecycle_stage=DELETED, deleted_time=int(1_900_000_000_000 - days_ago * DAY_MS)
    )


def gc(*args) -> str:
    out = io.StringIO()
    call_command("gc", *args, stdout=out)
    return out.getvalue()


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch):
    monkeypatch.setattr("time.time", lambda: 1_900_000_000)


def test_gc_removes_deleted_runs_with_what_they_logged_and_their_artifacts(experiment, artifact_root):
    kept, gone = logged_run(experiment, name="kept"), logged_run(experiment, name="gone")
    delete(gone)
    output = gc()
    assert f"Removed run {gone.run_id} (gone, experiment {experiment.id}): 1 params, 2 metric values" in output
    assert "1 artifact files" in output and "Removed 1 deleted run." in output
    assert list(Run.objects.values_list("run_id", flat=True)) == [kept.run_id]
    assert not Param.objects.filter(run_id=gone.pk).exists() and not Metric.objects.filter(run_id=gone.pk).exists()
    assert not RunTag.objects.filter(run_id=gone.pk).exists()
    assert not (artifact_root / str(experiment.id) / gone.run_id).exists()
    assert (
        artifact_root / str(experiment.id) / kept.run_id / "artifacts" / "model" / "w.bin"
    ).read_bytes() == b"weights"
    assert Metric.objects.filter(run=kept).count() == 2


def test_older_than_keeps_the_recently_deleted(experiment):
    old, recent = logged_run(experiment), logged_run(experiment)
    delete(old, days_ago=40)
    delete(recent, days_ago=2)
    gc("--older-than", "30d")
    assert set(Run.objects.values_list("run_id", flat=True)) == {recent.run_id}


def test_experiment_limits_it_to_that_experiment(experiment):
    other = ExperimentFactory()
    here, there = logged_run(experiment), logged_run(other)
    delete(here)
    delete(there)
    gc("--experiment", str(experiment.id))
    assert set(Run.objects.values_list("run_id", flat=True)) == {there.run_id}


def test_a_deleted_parent_of_a_live_child_stays_and_the_child_is_untouched(experiment, artifact_root):
    parent = logged_run(experiment, name="parent")
    child = logged_run(experiment, parent=parent, name="child")
    delete(parent)
    output = gc()
    assert f"Kept deleted run {parent.run_id}" in output and "Removed 0 deleted runs." in output
    child.refresh_from_db()
    assert child.parent_id == parent.pk and Metric.objects.filter(run=child).count() == 2


def test_a_deleted_subtree_goes_whole(experiment):
    parent = logged_run(experiment, name="parent")
    logged_run(experiment, parent=parent, name="child")
    for run in Run.objects.all():
        delete(run)
    assert "Removed 2 deleted runs." in gc()
    assert not Run.objects.exists()


def test_a_bad_age_or_experiment_is_refused(experiment):
    with pytest.raises(CommandError, match="30d"):
        gc("--older-than", "a month")
    with pytest.raises(CommandError, match="No experiment"):
        gc("--experiment", "424242")
