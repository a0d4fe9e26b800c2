"""Keeping summaries fresh: writes mark ancestors stale and queue one refresh per tree after commit."""

import threading
import time
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from kombu.exceptions import OperationalError

from tests.factories import ExperimentFactory, RunFactory, build_chain
from tracker import hot_sql, services, tasks
from tracker.constants import GOAL_TAG_PREFIX, PARENT_RUN_ID_TAG
from tracker.demo import TUNING_EXPERIMENT, load_demo
from tracker.models import ACTIVE, DELETED, Experiment, LatestMetric, Param, Run, RunSummary
from tracker.services import KeyValue, MetricInput
from tracker.summaries import refresh as summary_refresh

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


@pytest.fixture
def queued():
    """Record refresh_tree.delay calls instead of running them."""
    with mock.patch.object(tasks.refresh_tree, "delay") as delay:
        yield delay


def log(run, value, key="metric1", step=0):
    services.run_log_metric(run=run, metric=MetricInput(key=key, value=value, timestamp=1, step=step))


def stale_names(*runs):
    return [run.name for run in Run.objects.filter(pk__in=[r.pk for r in runs], summary_stale=True).order_by("depth")]


def best_of(run, key="metric1"):
    summary = RunSummary.objects.filter(run=run, key=key).first()
    return summary and (summary.best_value, summary.best_run_id)


# --- marking stale -----------------------------------------------------------------------------------


def test_logging_a_metric_marks_only_the_parent_stale():
    root, middle, leaf = build_chain(3)

    log(leaf, 0.5)

    # The grandparent's turn comes when the parent's refresh commits.
    assert stale_names(root, middle, leaf) == [middle.name]


def test_nothing_is_queued_before_the_write_commits(queued, django_capture_on_commit_callbacks):
    root, leaf = build_chain(2)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        log(leaf, 0.5)

    assert queued.call_count == 0
    for callback in callbacks:
        callback()
    queued.assert_called_once_with(root.pk)


def test_a_write_is_visible_in_the_summary_once_it_commits(committed):
    root, middle, leaf = build_chain(3)

    committed(log, leaf, 0.25)

    assert best_of(root) == best_of(middle) == (0.25, leaf.pk)
    assert stale_names(root, middle) == []
    assert not Run.objects.get(pk=root.pk).summary_queued


# --- coalescing -------------------------------------------------------------------------------------------


def test_a_burst_of_1000_metric_writes_into_one_tree_queues_one_task(queued, committed):
    root = RunFactory()
    sweep = [RunFactory(parent=root) for _ in range(10)]

    for i in range(1000):
        committed(log, sweep[i % 10], i / 1000, step=i)

    # One task while it waits in the queue, however many writes land meanwhile.
    assert queued.call_count == 1


def test_a_burst_while_the_task_runs_queues_one_more_pass(queued, committed):
    root = RunFactory()
    trial = RunFactory(parent=root)
    committed(log, trial, 0.9)

    summary_refresh.refresh_tree(root_pk=root.pk)  # the worker takes the task and clears the flag
    for step in range(100):
        committed(log, trial, 0.5, step=step + 1)

    assert queued.call_count == 2


def test_each_tree_queues_its_own_task(queued, committed):
    first, second = RunFactory(), RunFactory()
    first_child, second_child = RunFactory(parent=first), RunFactory(parent=second)

    for _ in range(5):
        committed(log, first_child, 0.1)
        committed(log, second_child, 0.1)

    assert sorted(call.args[0] for call in queued.call_args_list) == sorted([first.pk, second.pk])


def test_an_unreachable_broker_is_tried_once_per_tree_and_the_repair_queues_it_later(queued, committed, caplog):
    root, leaf = build_chain(2)
    queued.side_effect = OperationalError("connection refused")

    committed(log, leaf, 0.5)
    committed(log, leaf, 0.4)

    assert "broker unreachable" in caplog.text
    # The claim stays: the second write did not wait out the broker's timeout again.
    assert queued.call_count == 1
    root.refresh_from_db()
    assert (root.summary_stale, root.summary_queued) == (True, True)

    queued.side_effect = None  # the broker is back
    tasks.repair_stale_summaries()
    assert [call.args[0] for call in queued.call_args_list[1:]] == [root.pk]


# --- the task ------------------------------------------------------------------------------------------


def test_the_task_refreshes_children_before_their_parents():
    root, middle, leaf = build_chain(3)
    LatestMetric.objects.create(run=leaf, key="metric1", value=0.3, timestamp=0)
    Run.objects.filter(pk__in=[root.pk, middle.pk]).update(summary_stale=True, summary_queued=True)

    computed = tasks.refresh_tree(root.pk)

    assert computed == 2
    assert best_of(root) == (0.3, leaf.pk)  # only right if middle was computed first
    assert not Run.objects.get(pk=root.pk).summary_queued


def test_a_parent_computed_from_a_stale_child_summary_is_stale_again_once_the_child_is_refreshed(committed):
    # Two workers on one tree: A took its list when only the root was stale and recomputes it
    # while B, queued by a later write, is still to refresh the group under it.
    root, group, leaf = build_chain(3)
    committed(log, leaf, 0.5)
    log(leaf, 0.1, step=1)  # marks the group stale; its refresh is not run here
    Run.objects.filter(pk=root.pk).update(summary_stale=True)  # as an earlier refresh below it left it
    assert summary_refresh.refresh_stale_run(root.pk, parent_pk=None, goals={})  # worker A: built on the group's 0.5
    assert best_of(root) == (0.5, leaf.pk)

    assert summary_refresh.refresh_stale_run(group.pk, parent_pk=root.pk, goals={})  # worker B

    assert stale_names(root, group) == [root.name]
    summary_refresh.refresh_tree(root_pk=root.pk)
    assert best_of(root) == (0.1, leaf.pk)


def test_the_task_passes_again_over_parents_left_stale_beside_it():
    root, group, leaf = build_chain(3)
    LatestMetric.objects.create(run=leaf, key="metric1", value=0.3, timestamp=0)
    # Only the group is stale, as after another worker refreshed the root from its old summary.
    Run.objects.filter(pk=group.pk).update(summary_stale=True)

    assert tasks.refresh_tree(root.pk) == 2

    assert best_of(root) == (0.3, leaf.pk)
    assert stale_names(root, group) == []


def test_a_tree_whose_writes_keep_landing_gives_way_after_its_time_and_is_queued_again(queued, monkeypatch):
    root, leaf = build_chain(2)
    LatestMetric.objects.create(run=leaf, key="metric1", value=0.3, timestamp=0)
    Run.objects.filter(pk=root.pk).update(summary_stale=True)
    refresh_once = summary_refresh._refresh_deepest_first

    def refresh_while_a_write_lands(*args):
        computed = refresh_once(*args)
        Run.objects.filter(pk=root.pk).update(summary_stale=True)  # a child's next metric
        return computed

    monkeypatch.setattr(summary_refresh, "_refresh_deepest_first", refresh_while_a_write_lands)
    monkeypatch.setattr(summary_refresh, "SECONDS_PER_TASK", 0.2)

    started = time.monotonic()
    tasks.refresh_tree(root.pk)

    assert 0.2 <= time.monotonic() - started < 5
    assert best_of(root) == (0.3, leaf.pk)
    assert stale_names(root) == [root.name]
    assert Run.objects.get(pk=root.pk).summary_queued  # still the tree's: the next task's
    queued.assert_called_once_with(root.pk)


def test_a_write_that_lands_as_the_task_lets_go_of_the_tree_is_refreshed_by_that_task(queued, monkeypatch):
    root, leaf = build_chain(2)
    LatestMetric.objects.create(run=leaf, key="metric1", value=0.3, timestamp=0)
    Run.objects.filter(pk=root.pk).update(summary_stale=True, summary_queued=True)
    release = hot_sql.release_tree_refresh
    writes = []

    def a_write_lands_just_before(root_pk):
        if not writes:  # a better value, and its claim, which finds the flag still set
            LatestMetric.objects.filter(run=leaf).update(value=0.1)
            Run.objects.filter(pk=root.pk).update(summary_stale=True)
            writes.append(tasks.queue_tree_refresh(root_pk))
        release(root_pk)

    monkeypatch.setattr(hot_sql, "release_tree_refresh", a_write_lands_just_before)

    assert tasks.refresh_tree(root.pk) == 2

    assert writes == [False]  # the write queued nothing: it relied on the running task
    assert best_of(root) == (0.1, leaf.pk)
    assert stale_names(root) == []
    assert not Run.objects.get(pk=root.pk).summary_queued
    queued.assert_not_called()


def test_refreshing_a_run_locks_it_and_its_parent_in_id_order_and_marks_the_parent_stale(
    django_assert_num_queries,
):
    root, group, leaf = build_chain(3)
    LatestMetric.objects.create(run=leaf, key="metric1", value=0.3, timestamp=0)
    Run.objects.filter(pk=group.pk).update(summary_stale=True)

    # Expect 11 queries on PostgreSQL: a savepoint, lock parent and run in id order, claim, child
    # stats, the best candidates, keys logged on a dataset, params, delete vanished keys, upsert,
    # mark the parent stale, release. SQLite has no row locks (one writer at a time), so no lock
    # statement there.
    postgresql = connection.vendor == "postgresql"
    with django_assert_num_queries(11 if postgresql else 10) as captured:
        summary_refresh.refresh_stale_run(group.pk, parent_pk=root.pk, goals={})

    if postgresql:
        lock = captured.captured_queries[1]["sql"]
        assert "ORDER BY" in lock and "FOR UPDATE" in lock
    assert stale_names(root, group) == [root.name]


def test_the_task_leaves_other_trees_alone():
    root, leaf = build_chain(2)
    other_root, other_leaf = build_chain(2)
    for run in (leaf, other_leaf):
        LatestMetric.objects.create(run=run, key="metric1", value=0.3, timestamp=0)
    Run.objects.filter(pk__in=[root.pk, other_root.pk]).update(summary_stale=True)

    tasks.refresh_tree(root.pk)

    assert stale_names(root, other_root) == [other_root.name]


def test_the_repair_requeues_trees_left_stale_even_when_flagged_as_queued(queued):
    lost, fresh = RunFactory(), RunFactory()
    lost_child = RunFactory(parent=lost)
    RunFactory(parent=fresh)
    # A worker took this tree's task and died: the flags say "queued" and "stale" forever.
    Run.objects.filter(pk=lost.pk).update(summary_stale=True, summary_queued=True)
    Run.objects.filter(pk=lost_child.pk).update(summary_stale=True)

    assert tasks.repair_stale_summaries() == 1

    queued.assert_called_once_with(lost.pk)


def test_the_repair_task_brings_every_summary_up_to_date():
    root, leaf = build_chain(2)
    LatestMetric.objects.create(run=leaf, key="metric1", value=0.3, timestamp=0)
    Run.objects.filter(pk=root.pk).update(summary_stale=True, summary_queued=True)

    tasks.repair_stale_summaries()

    assert best_of(root) == (0.3, leaf.pk)
    assert stale_names(root) == []


# --- the events ---------------------------------------------------------------------------------------


def test_a_better_child_changes_the_best(committed):
    root = RunFactory()
    first, second = RunFactory(parent=root), RunFactory(parent=root)
    committed(log, first, 0.5)
    committed(log, second, 0.7)
    assert best_of(root) == (0.5, first.pk)

    committed(log, second, 0.1, step=1)

    assert best_of(root) == (0.1, second.pk)


def test_moving_a_run_updates_its_old_and_new_ancestors(committed):
    experiment = ExperimentFactory()
    old_root, old_parent = build_chain(2, experiment=experiment)
    new_root, new_parent = build_chain(2, experiment=experiment)
    mover = RunFactory(parent=old_parent)
    committed(log, mover, 0.1)
    committed(log, RunFactory(parent=new_parent), 0.6)
    assert best_of(old_root) == (0.1, mover.pk)

    committed(services.run_set_tag, run=mover, key=PARENT_RUN_ID_TAG, value=new_parent.run_id)

    assert best_of(old_root) is None and best_of(old_parent) is None
    assert best_of(new_root) == best_of(new_parent) == (0.1, mover.pk)


def test_deleting_the_best_child_falls_back_to_the_next_and_restoring_brings_it_back(committed):
    root, middle = build_chain(2)
    best, runner_up = RunFactory(parent=middle), RunFactory(parent=middle)
    committed(log, best, 0.1)
    committed(log, runner_up, 0.2)

    committed(services.run_set_lifecycle, run=best, stage=DELETED)
    assert best_of(root) == (0.2, runner_up.pk)

    committed(services.run_set_lifecycle, run=best, stage=ACTIVE)
    assert best_of(root) == (0.1, best.pk)


def test_setting_a_goal_on_the_experiment_recomputes_every_tree(committed):
    experiment = ExperimentFactory()
    roots = [RunFactory(experiment=experiment) for _ in range(2)]
    highs = []
    for root in roots:
        committed(log, RunFactory(parent=root), 0.2)
        highs.append(RunFactory(parent=root))
        committed(log, highs[-1], 0.8)

    committed(services.experiment_set_tag, experiment=experiment, key=GOAL_TAG_PREFIX + "metric1", value="max")

    assert [best_of(root) for root in roots] == [(0.8, high.pk) for high in highs]
    assert set(RunSummary.objects.filter(run__in=roots).values_list("goal", flat=True)) == {"max"}


def test_deleting_a_goal_tag_ranks_every_tree_by_the_inferred_goal_again(committed):
    experiment = ExperimentFactory()
    committed(services.experiment_set_tag, experiment=experiment, key=GOAL_TAG_PREFIX + "metric1", value="max")
    root = RunFactory(experiment=experiment)
    low, high = RunFactory(parent=root), RunFactory(parent=root)
    committed(log, low, 0.2)
    committed(log, high, 0.8)
    assert best_of(root) == (0.8, high.pk)

    committed(services.experiment_delete_tag, experiment=experiment, key=GOAL_TAG_PREFIX + "metric1")

    assert best_of(root) == (0.2, low.pk)  # metric1 says nothing: lower is better
    assert RunSummary.objects.get(run=root, key="metric1").goal == "min"


def test_a_nan_from_the_best_child_hands_the_best_to_the_next(committed):
    root = RunFactory()
    best, runner_up = RunFactory(parent=root), RunFactory(parent=root)
    committed(log, best, 0.1)
    committed(log, runner_up, 0.2)

    committed(log, best, float("nan"), step=1)

    assert best_of(root) == (0.2, runner_up.pk)


def test_a_params_event_refreshes_the_params_shown_for_the_best_run(committed):
    root, leaf = build_chain(2)
    committed(log, leaf, 0.1)
    Param.objects.create(run=leaf, key="late", value="1")

    committed(lambda: tasks.mark_parents_stale_and_queue(run=leaf))  # what run_log_param does for a best run

    assert RunSummary.objects.get(run=root).best_params == {"late": "1"}


# --- on demand and embedded ----------------------------------------------------------------------------


def test_the_command_recomputes_one_experiment_or_all(capsys):
    trees = [build_chain(2) for _ in range(2)]
    for _, leaf in trees:
        LatestMetric.objects.create(run=leaf, key="metric1", value=0.3, timestamp=0)

    call_command("refresh_summaries", "--experiment", str(trees[0][0].experiment_id), verbosity=0)
    assert [best_of(root) for root, _ in trees] == [(0.3, trees[0][1].pk), None]

    call_command("refresh_summaries", verbosity=0)
    assert [best_of(root) for root, _ in trees] == [(0.3, leaf.pk) for _, leaf in trees]
    assert "Recomputed the summaries of 2 runs." in capsys.readouterr().out


def test_the_demo_loaded_through_ingest_has_every_parent_summarised(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        load_demo(start_ms=1_700_000_000_000)

    experiment = Experiment.objects.get(name=TUNING_EXPERIMENT)
    parents = Run.objects.filter(experiment=experiment, parent__isnull=True)
    assert parents.count() == 15
    for parent in parents:
        children = LatestMetric.objects.filter(run__parent=parent, key="metric1")
        best_child = min(children, key=lambda metric: metric.value)
        summary = RunSummary.objects.get(run=parent, key="metric1")
        assert (summary.best_value, summary.best_run_id) == (best_child.value, best_child.run_id)
        assert summary.best_params == dict(Param.objects.filter(run=best_child.run_id).values_list("key", "value"))
    assert not Run.objects.filter(summary_stale=True).exists()


def test_a_child_created_and_logged_in_one_transaction_shows_at_once(committed):
    root = RunFactory()

    def create_and_log():
        run = services.run_create(experiment=root.experiment, tags=[KeyValue(PARENT_RUN_ID_TAG, root.run_id)])
        log(run, 0.4)
        return run

    child = committed(create_and_log)

    assert best_of(root) == (0.4, child.pk)


# --- concurrency -------------------------------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer at a time: nothing to deadlock")
@pytest.mark.django_db(transaction=True)
def test_writers_below_one_parent_and_a_refresh_beside_them_never_deadlock(queued):
    root, middle, group = build_chain(3)
    leaves = [RunFactory(parent=group) for _ in range(6)]  # six writers meeting at three ancestor rows
    errors, stop_refreshing = [], threading.Event()

    def write(leaf):
        try:
            for step in range(100):
                log(leaf, 1.0 - step / 1000, step=step)
        except Exception as exc:  # a deadlock surfaces as OperationalError in one writer
            errors.append(exc)
        finally:
            connection.close()

    def refresh():
        try:
            while not stop_refreshing.is_set():
                Run.objects.filter(pk=root.pk).update(summary_stale=True)
                summary_refresh.refresh_tree(root_pk=root.pk)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    refresher = threading.Thread(target=refresh)
    refresher.start()
    writers = [threading.Thread(target=write, args=(leaf,)) for leaf in leaves]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop_refreshing.set()
    refresher.join()

    assert errors == []
    summary_refresh.refresh_tree(root_pk=root.pk)
    assert best_of(root)[0] == pytest.approx(0.901)


def test_a_param_logged_after_its_metric_reaches_the_parents_best_params(experiment, committed):
    parent = committed(services.run_create, experiment=experiment, name="parent")
    child = committed(
        services.run_create, experiment=experiment, name="child", tags=[KeyValue(PARENT_RUN_ID_TAG, parent.run_id)]
    )
    committed(log, child, 0.5)
    assert RunSummary.objects.get(run=parent, key="metric1").best_params == {}

    committed(services.run_log_param, run=child, key="lr", value="0.1")

    assert RunSummary.objects.get(run=parent, key="metric1").best_params == {"lr": "0.1"}


def test_with_a_broker_a_burst_into_one_tree_rides_on_one_delayed_refresh(settings, committed):
    settings.RUNTREE_SUMMARY_REFRESH_DELAY_MS = 500
    root, leaf = build_chain(2)
    tasks._queued_here.clear()
    with mock.patch.object(tasks.refresh_tree, "apply_async") as apply_async:
        committed(log, leaf, 0.5)
        with CaptureQueriesContext(connection) as later_writes:
            for step, value in enumerate((0.4, 0.3, 0.2), start=1):
                committed(log, leaf, value, step=step)

    apply_async.assert_called_once_with((root.pk,), countdown=0.5)
    # The later writes neither claimed the tree again nor published: the queued task will see them.
    assert not [q for q in later_writes.captured_queries if "summary_queued" in q["sql"]]
    root.refresh_from_db()
    assert root.summary_queued  # the task lets go of it once it finds nothing left to refresh
