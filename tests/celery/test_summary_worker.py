"""Best-child summaries kept by a real Celery worker on a real Redis broker, fed through the
real mlflow client: the seed notebook's challenge done by the server, with no client code."""

import random
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tests.celery import seed001_tuning
from tracker import tasks
from tracker.models import ACTIVE, Experiment, LatestMetric, Param, Run
from tracker.summaries import reads as summary_reads

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

SETTLE_TIMEOUT_S = 30


def expected_bests(experiment_name: str, key: str = "metric1") -> dict[int, tuple[str, str, dict]]:
    """Every parent → (best value as its tag shows it, best run id, that run's params), worked out
    here by brute force over the whole subtree, as the challenge's client code would."""
    experiment = Experiment.objects.get(name=experiment_name)
    runs = {run.pk: run for run in Run.objects.filter(experiment=experiment)}
    values = dict(LatestMetric.objects.filter(run__in=runs, key=key, value__isnull=False).values_list("run", "value"))
    expected = {}
    for parent in runs.values():
        if not any(run.parent_id == parent.pk for run in runs.values()):
            continue
        below = [run for run in runs.values() if run.path.startswith(parent.path) and run.pk != parent.pk]
        subtree = [run for run in below if run.pk in values and _alive_below(run, parent, runs)]
        best = min(subtree, key=lambda run: (values[run.pk], run.start_time, run.run_id))
        params = dict(Param.objects.filter(run=best).values_list("key", "value"))
        expected[parent.pk] = (repr(values[best.pk]), best.run_id, params)
    return expected


def _alive_below(run: Run, parent: Run, runs: dict[int, Run]) -> bool:
    """`run` and every run between it and `parent` are active (a deleted run hides its subtree)."""
    while run.pk != parent.pk:
        if run.lifecycle_stage != ACTIVE:
            return False
        run = runs[run.parent_id]
    return True


def shown_bests(parent_pks, key: str = "metric1") -> dict[int, tuple[str, str, dict]]:
    """What the server shows on each parent: its reserved runtree.best.* tags."""
    shown = {}
    prefix = f"runtree.best.{key}"
    params_prefix = f"{prefix}.params."
    for pk, tags in summary_reads.reserved_tags_for(parent_pks).items():
        tags = dict(tags)
        params = {name[len(params_prefix) :]: value for name, value in tags.items() if name.startswith(params_prefix)}
        shown[pk] = (tags.get(prefix), tags.get(f"{prefix}.run_id"), params)
    return shown


def wait_until_every_parent_is_right(experiment_name: str, cluster, timeout: float = SETTLE_TIMEOUT_S) -> float:
    """Seconds until no summary is stale and every parent shows its true best; fail after `timeout`."""
    started = time.monotonic()
    while True:
        expected = expected_bests(experiment_name)
        shown = shown_bests(expected)
        if shown == expected and not Run.objects.filter(summary_stale=True).exists():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            wrong = {pk: (shown[pk], expected[pk]) for pk in expected if shown[pk] != expected[pk]}
            stale = list(Run.objects.filter(summary_stale=True).values_list("pk", "summary_queued"))
            pytest.fail(
                f"after {timeout} s, {len(wrong)} of {len(expected)} parents are wrong "
                f"(shown, expected): {wrong}; stale (pk, queued): {stale}\n{cluster.log_text()}"
            )
        time.sleep(0.1)


def test_the_worker_records_each_parents_best_child_for_the_seed_sweep_and_follows_a_better_one(cluster):
    cluster.start("worker")
    random.seed(1)

    seed001_tuning.run_workload(num_parents=5, num_child_runs=25)

    wait_until_every_parent_is_right("Parent Child Association Challenge", cluster)
    parents = Run.objects.filter(experiment__name="Parent Child Association Challenge", parent__isnull=True)
    assert parents.count() == 5

    # A better child arrives: the parent shows it within two seconds.
    parent = parents.order_by("start_time").first()
    client = MlflowClient()
    better = client.create_run(parent.experiment_id, tags={"mlflow.parentRunId": parent.run_id})
    client.log_param(better.info.run_id, "param1", "b")
    logged_at = time.monotonic()
    client.log_metric(better.info.run_id, "metric1", -1.0)
    while shown_bests([parent.pk])[parent.pk][:2] != ("-1.0", better.info.run_id):
        assert time.monotonic() - logged_at < 2.0, f"the parent still shows {shown_bests([parent.pk])}"
        time.sleep(0.02)
    assert shown_bests([parent.pk])[parent.pk][2] == {"param1": "b"}


def test_a_worker_killed_mid_sweep_loses_nothing_once_the_repair_has_run(cluster):
    cluster.start("worker")
    client = MlflowClient()
    experiment_id = client.create_experiment("killed mid-sweep")
    rng = random.Random(2)
    parents = [client.create_run(experiment_id, run_name=f"trial-group-{g}") for g in range(4)]
    # Three levels, so a lost refresh of a middle run would also leave its root wrong.
    groups = [
        client.create_run(experiment_id, run_name=f"{p.info.run_name}-{i}", tags={"mlflow.parentRunId": p.info.run_id})
        for p in parents
        for i in range(2)
    ]
    children_per_group = 12
    for n in range(children_per_group * len(groups)):
        group = groups[n % len(groups)]
        child = client.create_run(experiment_id, tags={"mlflow.parentRunId": group.info.run_id})
        client.log_batch(
            child.info.run_id,
            metrics=[mlflow.entities.Metric("metric1", rng.uniform(0, 1), 0, 0)],
            params=[mlflow.entities.Param("lr", str(rng.choice([0.1, 0.01, 0.001])))],
        )
        if n == children_per_group * len(groups) // 2:
            # Straight after a write, so the worker is most likely inside that write's refresh.
            cluster.kill("worker")

    # Writes went on with no worker: the trees are stale, their tasks queued or lost with the worker.
    assert Run.objects.filter(experiment_id=experiment_id, summary_stale=True).exists()
    cluster.start("worker")
    cluster.start("beat", repair_seconds=1)

    wait_until_every_parent_is_right("killed mid-sweep", cluster)


def test_the_repair_alone_recovers_a_tree_whose_task_was_lost(cluster):
    cluster.start("worker")
    client = MlflowClient()
    experiment_id = client.create_experiment("lost task")
    parent = client.create_run(experiment_id)
    for value in (0.5, 0.25, 0.75):
        child = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent.info.run_id})
        client.log_metric(child.info.run_id, "metric1", value)
    wait_until_every_parent_is_right("lost task", cluster)
    parent_pk = Run.objects.get(run_id=parent.info.run_id).pk

    # What a worker killed holding the task leaves behind: the tree stale and flagged as queued,
    # and no message that will ever reach another worker.
    cluster.kill("worker")
    better = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent.info.run_id})
    client.log_metric(better.info.run_id, "metric1", 0.125)
    cluster.lose_queued_tasks()
    cluster.start("worker")
    time.sleep(1)
    assert shown_bests([parent_pk])[parent_pk][0] == "0.25"
    assert Run.objects.filter(pk=parent_pk, summary_stale=True, summary_queued=True).exists()

    tasks.repair_stale_summaries()  # what beat's repair_stale_summaries does

    assert wait_until_every_parent_is_right("lost task", cluster, timeout=5) < 5


def test_the_mlflow_client_reads_the_best_child_from_the_parents_tags(cluster):
    cluster.start("worker")
    client = MlflowClient()
    experiment_id = client.create_experiment("through the client")
    parent = client.create_run(experiment_id)
    child = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent.info.run_id})
    client.log_param(child.info.run_id, "param1", "a")
    client.log_metric(child.info.run_id, "metric1", 0.5)
    wait_until_every_parent_is_right("through the client", cluster)

    tags = client.get_run(parent.info.run_id).data.tags

    assert tags["runtree.best.metric1"] == "0.5"
    assert tags["runtree.best.metric1.run_id"] == child.info.run_id
    assert tags["runtree.best.metric1.params.param1"] == "a"
