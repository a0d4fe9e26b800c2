"""Run and experiment lookups and searches shared by the MLflow API, the native API and the pages."""

from django.db.models import QuerySet

from tracker import hot_sql
from tracker.errors import InvalidParameterValue, ResourceDoesNotExist
from tracker.filtering import compile_filter
from tracker.models import Experiment, Run


def find_experiment(experiment_id) -> Experiment:
    """The experiment with this id, or ResourceDoesNotExist (bad ids included)."""
    try:
        experiment_id = int(experiment_id)
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"Experiment id must be an integer, got {experiment_id!r}") from None
    # Every run-create starts here: fixed SQL, not a compiled query (tracker/hot_sql.py).
    experiment = hot_sql.experiment_by_id(experiment_id)
    if experiment is None:
        raise ResourceDoesNotExist(f"No Experiment with id={experiment_id} exists")
    return experiment


def find_run(run_id) -> Run:
    """The run with this MLflow run id, or ResourceDoesNotExist."""
    if not isinstance(run_id, str) or not run_id:
        raise InvalidParameterValue(f"Run id must be a non-empty string, got {run_id!r}")
    # Every tracking call starts here: fixed SQL, not a compiled query (tracker/hot_sql.py).
    run = hot_sql.run_by_run_id(run_id)
    if run is None:
        raise ResourceDoesNotExist(f"Run with id={run_id} not found")
    return run


def runs_matching(runs: QuerySet, filter_text: str) -> QuerySet:
    """`runs` narrowed to those that match a filter in Runtree's filter language
    (tracker/filtering/); blank text matches every run. A bad filter raises FilterError (HTTP 400)."""
    return runs.filter(compile_filter(filter_text))
