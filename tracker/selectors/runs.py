"""Run searches shared by the MLflow API, the native API and the pages."""

from django.db.models import QuerySet

from tracker.filtering import compile_filter


def runs_matching(runs: QuerySet, filter_text: str) -> QuerySet:
    """`runs` narrowed to those that match a filter in Runtree's filter language
    (tracker/filtering/); blank text matches every run. A bad filter raises FilterError (HTTP 400)."""
    return runs.filter(compile_filter(filter_text))
