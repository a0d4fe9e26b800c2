"""`make run`'s configuration (a worker on a folder broker, no server beyond Runtree): a metric
write is answered without computing any summary, and the worker brings the summary soon after."""

import pytest
from mlflow.tracking import MlflowClient

from tests.celery.conftest import CeleryCluster
from tests.celery.test_summary_worker import shown_bests, wait_until_every_parent_is_right
from tracker.models import Run, RunSummary

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def embedded(tmp_path, request):
    request.getfixturevalue("tracking_uri")
    cluster = CeleryCluster(tmp_path, "folder")
    cluster.connect()
    yield cluster
    cluster.stop()


def test_a_metric_write_returns_before_its_summary_is_computed_and_the_summary_still_arrives(embedded):
    client = MlflowClient()
    experiment_id = client.create_experiment("embedded default")
    parent = client.create_run(experiment_id)
    child = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent.info.run_id})

    # No worker yet: had the write waited for its refresh (eager Celery), it would have computed
    # the summary itself before answering.
    client.log_metric(child.info.run_id, "metric1", 0.5)

    parent_pk = Run.objects.get(run_id=parent.info.run_id).pk
    assert Run.objects.get(pk=parent_pk).summary_stale
    assert not RunSummary.objects.filter(run_id=parent_pk).exists()
    assert embedded.broker.queued() == 1  # the refresh waits in the folder

    embedded.start("worker")

    wait_until_every_parent_is_right("embedded default", embedded, timeout=10)
    assert shown_bests([parent_pk])[parent_pk][:2] == ("0.5", child.info.run_id)
    assert embedded.broker.queued() == 0
