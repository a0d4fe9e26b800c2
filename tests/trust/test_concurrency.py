"""Eight processes log a sweep into one experiment and one shared parent at the same time,
through the mlflow client, against granian (two processes of four threads) on the database of
this test session: PostgreSQL, or SQLite in a file (WAL and its busy timeout are what is under
test, so not pytest-django's in-memory database). No request may fail, nothing may be lost."""

import multiprocessing
import sqlite3
import threading
import time

import pytest
from django.db import connection, transaction
from mlflow import MlflowClient

from tests.trust import sweep_worker
from tests.trust.conftest import (
    ON_POSTGRESQL,
    Server,
    migrated_sqlite_url,
    postgresql_url_of_test_database,
    requires_postgresql,
)
from tracker import hot_sql, services
from tracker.errors import InvalidParameterValue, ResourceAlreadyExists
from tracker.models import Experiment, LatestMetric, Metric, Param, Run, RunTag
from tracker.services import MetricInput

WORKERS = 8
EXPERIMENT = "concurrent sweep"


class ServerDatabase:
    """Counts rows in the server's database, wherever it is."""

    def __init__(self, url: str):
        self.sqlite_path = url.removeprefix("sqlite:///") if url.startswith("sqlite:") else None

    def scalar(self, sql: str, params=()):
        if self.sqlite_path is None:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()[0]
        with sqlite3.connect(self.sqlite_path) as sqlite:
            return sqlite.execute(sql.replace("%s", "?"), params).fetchone()[0]


def table(model) -> str:
    return model._meta.db_table


@pytest.fixture
def server(transactional_db, tmp_path):
    if ON_POSTGRESQL:
        connection.ensure_connection()
        url = postgresql_url_of_test_database()
    else:
        url = migrated_sqlite_url(tmp_path)
    server = Server(url, workers=2, threads=4).start()
    yield server
    server.stop()


def test_eight_processes_log_into_one_shared_parent_and_everything_arrives(server):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    with context.Pool(WORKERS, initializer=sweep_worker.start, initargs=(server.url, barrier)) as pool:
        # All at once: the experiment does not exist yet, so all eight try to create it.
        experiment_ids = pool.map(sweep_worker.join_experiment, [EXPERIMENT] * WORKERS, chunksize=1)
        assert len(set(experiment_ids)) == 1
        parent = MlflowClient(tracking_uri=server.url).create_run(experiment_ids[0], run_name="shared parent")
        parent_run_id = parent.info.run_id
        sweeps = [(worker, EXPERIMENT, parent_run_id) for worker in range(WORKERS)]
        done = pool.starmap(sweep_worker.log_sweep, sweeps, chunksize=1)
    assert sorted(done) == list(range(WORKERS))
    log = server.stop()
    assert "Error" not in log and "unavailable" not in log, log

    db = ServerDatabase(server.database_url)
    trials = WORKERS * sweep_worker.TRIALS
    experiment_id = int(experiment_ids[0])
    parent_pk = db.scalar(f"SELECT id FROM {table(Run)} WHERE run_id = %s", [parent_run_id])
    runs = f"SELECT id FROM {table(Run)} WHERE experiment_id = %s"

    def count(model, where: str = "", params=()) -> int:
        sql = f"SELECT COUNT(*) FROM {table(model)} WHERE run_id IN ({runs}) {where}"
        return db.scalar(sql, [experiment_id, *params])

    assert db.scalar(f"SELECT COUNT(*) FROM {table(Experiment)} WHERE name = %s", [EXPERIMENT]) == 1
    assert db.scalar(f"SELECT COUNT(*) FROM {table(Run)} WHERE experiment_id = %s", [experiment_id]) == 1 + trials
    assert db.scalar(f"SELECT COUNT(*) FROM {table(Run)} WHERE parent_id = %s AND depth = 1", [parent_pk]) == trials
    assert count(Param) == trials * len(sweep_worker.CHILD_PARAMS) + 1
    assert count(Param, "AND key = %s", [sweep_worker.SHARED_PARAM[0]]) == 1
    per_trial = sweep_worker.STEPS + len(sweep_worker.BATCH_METRICS)
    assert count(Metric, "AND run_id <> %s", [parent_pk]) == trials * per_trial
    assert count(Metric, "AND run_id = %s AND key = 'trials_done'", [parent_pk]) == trials
    assert count(RunTag, "AND key = 'worker'") == trials
    assert count(RunTag, "AND run_id = %s AND key LIKE 'worker.%%'", [parent_pk]) == WORKERS
    # The parent's latest "trials_done" is the one with the highest step, whoever wrote last.
    last_step = (WORKERS - 1) * 100 + sweep_worker.TRIALS - 1
    latest = f"SELECT step FROM {table(LatestMetric)} WHERE run_id = %s AND key = 'trials_done'"
    assert db.scalar(latest, [parent_pk]) == last_step


# --- the races, one at a time ------------------------------------------------------------------------
# Two writers are stopped at the same point inside their transactions, then let go. On SQLite
# they cannot interleave at all (BEGIN IMMEDIATE queues writers on the busy timeout), so these
# run on PostgreSQL.


def race(*calls, hook_owner, hook_name: str, stagger: float = 0.0):
    """Run `calls` in threads that meet at `hook_owner.hook_name` (inside their transactions)
    and go on from there together (the n-th after n × `stagger` seconds). Returns each call's
    result or the exception it raised."""
    barrier = threading.Barrier(len(calls), timeout=20)
    real = getattr(hook_owner, hook_name)
    order = {}
    met = []

    def meet(*args, **kwargs):
        met.append(threading.get_ident())
        barrier.wait()
        time.sleep(stagger * order[threading.get_ident()])
        return real(*args, **kwargs)

    results = [None] * len(calls)

    def run(index, call):
        order[threading.get_ident()] = index
        try:
            results[index] = call()
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    setattr(hook_owner, hook_name, meet)
    try:
        threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        setattr(hook_owner, hook_name, real)
    # A hook the code no longer calls would let the calls run one after the other and pass.
    assert len(met) == len(calls), f"not every call reached {hook_name}: nothing raced ({results})"
    return results


@pytest.fixture
def run(transactional_db):
    experiment = Experiment.objects.create(name="races", creation_time=0, last_update_time=0)
    return services.run_create(experiment=experiment, name="contended")


@requires_postgresql
def test_two_creators_of_one_experiment_name_get_it_made_once_and_already_exists(transactional_db):
    # Both pass the name check before either inserts; the unique index decides.
    results = race(
        lambda: services.experiment_create(name="twins"),
        lambda: services.experiment_create(name="twins"),
        hook_owner=services.experiments,
        hook_name="now_ms",  # called just after the name check
    )
    made = [result for result in results if isinstance(result, Experiment)]
    refused = [result for result in results if isinstance(result, ResourceAlreadyExists)]
    assert (len(made), len(refused)) == (1, 1), results
    assert Experiment.objects.filter(name="twins").count() == 1


@requires_postgresql
def test_two_different_values_for_one_param_one_wins_and_the_other_is_refused(run):
    results = race(
        lambda: services.run_log_param(run=run, key="lr", value="0.1"),
        lambda: services.run_log_param(run=run, key="lr", value="0.2"),
        hook_owner=hot_sql,
        hook_name="insert_params",
    )
    refused = [result for result in results if isinstance(result, InvalidParameterValue)]
    assert len(refused) == 1, results
    stored = Param.objects.get(run=run, key="lr").value
    winner = "0.1" if results[0] is None else "0.2"
    assert stored == winner
    assert "Changing param values is not allowed" in refused[0].message


@requires_postgresql
@pytest.mark.parametrize("value, refused", [("0.1", False), ("0.2", True)])
def test_a_param_another_writer_commits_while_the_write_waits_is_compared_with(run, value, refused):
    # The other writer's row is uncommitted when this write inserts the same key: the insert waits
    # for it and finds the key taken. The value compared with must be the other writer's, read
    # once committed (a read in the insert's own snapshot would find nothing).
    holding = threading.Event()

    def other_writer():
        try:
            with transaction.atomic():
                hot_sql.insert_params(run.pk, [("lr", "0.1")])
                holding.set()
                time.sleep(0.5)  # this param's statement starts meanwhile, and waits for the commit
        finally:
            connection.close()

    other = threading.Thread(target=other_writer)
    other.start()
    assert holding.wait(timeout=20)
    try:
        if refused:
            with pytest.raises(InvalidParameterValue, match="already logged with value='0.1'"):
                services.run_log_param(run=run, key="lr", value=value)
        else:
            services.run_log_param(run=run, key="lr", value=value)
    finally:
        other.join(timeout=20)
    assert Param.objects.get(run=run, key="lr").value == "0.1"


@requires_postgresql
def test_a_later_step_is_not_overwritten_by_an_earlier_one_written_at_the_same_time(run):
    late, early = (
        MetricInput("loss", 0.2, 1_700_000_000_002, step=2),
        MetricInput("loss", 0.9, 1_700_000_000_001, step=1),
    )
    results = race(
        lambda: services.run_log_metric(run=run, metric=late),
        lambda: services.run_log_metric(run=run, metric=early),  # arrives a moment after the late step
        hook_owner=hot_sql,
        hook_name="upsert_latest_metrics",
        stagger=0.3,
    )
    assert results == [None, None]
    assert Metric.objects.filter(run=run).count() == 2
    latest = LatestMetric.objects.get(run=run, key="loss")
    assert (latest.step, latest.value) == (2, 0.2)


@requires_postgresql
@pytest.mark.parametrize("kind", ["tags", "params"])
def test_two_writers_of_the_same_keys_in_opposite_orders_do_not_deadlock(run, kind):
    # Each INSERT locks its rows' index entries as it goes: in opposite orders, two statements
    # meet in the middle, each waiting for the other, and PostgreSQL kills one (a 503 to its client).
    keys = [f"k{index:03d}" for index in range(100)]

    def write(order):
        pairs = [services.KeyValue(key, "same") for key in order]
        return lambda: services.run_log_batch(run=run, **{kind: pairs})

    hook = "upsert_tags" if kind == "tags" else "insert_params"
    results = race(write(keys), write(keys[::-1]), hook_owner=hot_sql, hook_name=hook)
    assert results == [None, None]
    stored = (RunTag if kind == "tags" else Param).objects.filter(run=run, key__startswith="k")
    assert stored.count() == len(keys)


@requires_postgresql
def test_two_runs_made_each_others_parent_at_once_make_no_cycle(transactional_db):
    # Each move checks that its new parent is no descendant; without one move at a time in an
    # experiment, both checks pass before either commits, and the two runs leave every tree.
    experiment = Experiment.objects.create(name="cycle", creation_time=0, last_update_time=0)
    first = services.run_create(experiment=experiment, name="a")
    second = services.run_create(experiment=experiment, name="b")
    results = race(
        lambda: services.run_set_tag(run=first, key="mlflow.parentRunId", value=second.run_id),
        lambda: services.run_set_tag(run=second, key="mlflow.parentRunId", value=first.run_id),
        hook_owner=services.runs,
        hook_name="check_client_tag",  # inside the transaction, before the move
    )
    refused = [result for result in results if isinstance(result, InvalidParameterValue)]
    assert len(refused) == 1 and "would make a cycle" in refused[0].message, results
    first.refresh_from_db()
    second.refresh_from_db()
    roots = [run for run in (first, second) if run.parent_id is None]
    assert len(roots) == 1
    child = second if roots[0] == first else first
    assert child.parent_id == roots[0].pk
    assert child.path.startswith(roots[0].path) and (roots[0].depth, child.depth) == (0, 1)


@requires_postgresql
def test_a_child_created_while_its_parent_moves_keeps_its_place_in_the_tree(transactional_db, monkeypatch):
    # The child reads its parent's path, then (slowed here) inserts itself; meanwhile the parent's
    # subtree moves under another run and commits. Placed from the old path, the child would
    # belong to no tree; it must end up under its parent's new path.
    experiment = Experiment.objects.create(name="moving", creation_time=0, last_update_time=0)
    new_root = services.run_create(experiment=experiment, name="new root")
    parent = services.run_create(experiment=experiment, name="parent")
    barrier = threading.Barrier(2, timeout=20)
    creator, met = [], set()

    def meeting(real):
        def meet(*args, **kwargs):
            if threading.get_ident() not in met:  # each thread's first call, inside its transaction
                met.add(threading.get_ident())
                barrier.wait()
            return real(*args, **kwargs)

        return meet

    real_insert_run = hot_sql.insert_run

    def slow_insert_run(run):
        if threading.get_ident() in creator:
            time.sleep(0.5)  # the move runs now, if nothing holds it back
        return real_insert_run(run)

    monkeypatch.setattr(services.runs, "check_experiment_active", meeting(services.runs.check_experiment_active))
    monkeypatch.setattr(services.runs, "check_client_tag", meeting(services.runs.check_client_tag))
    monkeypatch.setattr(hot_sql, "insert_run", slow_insert_run)
    results = {}

    def create_child():
        creator.append(threading.get_ident())
        try:
            tags = [services.KeyValue("mlflow.parentRunId", parent.run_id)]
            results["child"] = services.run_create(experiment=experiment, name="child", tags=tags)
        finally:
            connection.close()

    def move_parent():
        try:
            services.run_set_tag(run=parent, key="mlflow.parentRunId", value=new_root.run_id)
            results["moved"] = True
        finally:
            connection.close()

    threads = [threading.Thread(target=create_child), threading.Thread(target=move_parent)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results.get("moved") and "child" in results, results
    parent.refresh_from_db()
    child = Run.objects.get(pk=results["child"].pk)
    assert parent.path.startswith(new_root.path)
    assert child.path.startswith(parent.path) and child.depth == parent.depth + 1 == 2
    assert child.tags.get(key="mlflow.rootRunId").value == new_root.run_id
