"""What a write tells the rest of the domain about a change to the run hierarchy.

The write services in tracker/ingest.py call these inside their transaction; best-child
summaries (tracker/summaries.py) listen here, so ingest never needs to know how summaries work.
"""

from tracker.models import Experiment, Run


def metrics_changed(*, run: Run, keys: list[str]) -> None:
    """The latest value of `keys` changed on `run`."""
    from tracker import summaries

    summaries.mark_parents_stale(run=run)


def params_changed(*, run: Run) -> None:
    """Params were logged on `run`: if it is some ancestor's best run, that summary shows them.
    Most params arrive before a run's metrics (so before it can be anyone's best): only a run
    that already is a best run costs a refresh."""
    from tracker import statements, summaries

    if run.parent_id is not None and statements.is_some_parents_best_run(run.pk):
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
