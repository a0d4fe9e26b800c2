"""What a write tells the rest of the domain about a change to the run hierarchy.

The write services in tracker/ingest.py call these inside their transaction; best-child
summaries (tracker/summaries.py) listen here, so ingest never needs to know how summaries work.
"""

from tracker.models import Experiment, Run, path_ids


def metrics_changed(*, run: Run, keys: list[str]) -> None:
    """The latest value of `keys` changed on `run`."""
    from tracker import summaries

    summaries.mark_parents_stale(run=run)


def parent_marked_stale(*, run: Run) -> None:
    """A metric write of `run` marked its parent stale in its own statement
    (hot_sql.log_child_metric): only the refresh of the tree is left to queue."""
    from tracker import summaries

    summaries.queue_refresh_after_commit([path_ids(run.path)[0]])


def params_change_summaries(*, run: Run) -> bool:
    """Whether params logged on `run` change a summary: only if it is some parent's best run,
    whose summary shows its params. Most params arrive before a run's metrics (so before it can
    be anyone's best). Asked before the write, so that a write that needs no refresh is one
    statement. (A refresh that makes the run best while the param is being written may miss it
    until the tree's next refresh, as it could when this was asked just after the write.)"""
    from tracker import hot_sql

    return run.parent_id is not None and hot_sql.is_some_parents_best_run(run.pk)


def params_changed(*, run: Run) -> None:
    """Params were logged on `run`, a best run (params_change_summaries): refresh its summary."""
    from tracker import summaries

    summaries.mark_parents_stale(run=run)


def run_moved(*, run: Run, old_parent_pk: int | None) -> None:
    """`run` (with its subtree) left `old_parent_pk` for its current parent."""
    from tracker import summaries

    summaries.mark_parents_stale(run=run, old_parent_pk=old_parent_pk)


def run_lifecycle_changed(*, run: Run) -> None:
    """`run` was deleted or restored."""
    from tracker import summaries

    summaries.mark_parents_stale(run=run)


def goal_changed(*, experiment: Experiment, metric_key: str) -> None:
    """The experiment's goal (min/max) for `metric_key` changed."""
    from tracker import summaries

    summaries.mark_experiment_stale(experiment=experiment)
