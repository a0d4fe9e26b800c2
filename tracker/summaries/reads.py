"""Summaries as the pages and the APIs read them."""

from collections.abc import Iterable

from tracker import hot_sql
from tracker.constants import BEST_TAG_PREFIX
from tracker.models import RunSummary


def summaries_for(run_pks: Iterable[int]) -> dict[int, list[RunSummary]]:
    """Each run's summary rows in key order, best run attached (one query). Runs without a
    summary (no children, or none with a number) map to an empty list."""
    run_pks = list(run_pks)
    found: dict[int, list[RunSummary]] = {pk: [] for pk in run_pks}
    rows = RunSummary.objects.filter(run_id__in=run_pks).select_related("best_run").order_by("run_id", "key")
    for summary in rows:
        found[summary.run_id].append(summary)
    return found


def reserved_tags_for(run_pks: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
    """The read-only MLflow tags each parent carries for its best descendant (one query per
    30,000 runs): `runtree.best.<metric>` (repr of the float), `runtree.best.<metric>.run_id`
    and `runtree.best.<metric>.params.<param>`, in key order. Runs without a summary map to []."""
    run_pks = list(run_pks)
    tags: dict[int, list[tuple[str, str]]] = {pk: [] for pk in run_pks}
    for run_pk, key, best_value, best_run_id, best_params in hot_sql.best_summaries_of(run_pks):
        prefix = f"{BEST_TAG_PREFIX}{key}"
        tags[run_pk].append((prefix, repr(best_value)))
        tags[run_pk].append((f"{prefix}.run_id", best_run_id))
        tags[run_pk].extend((f"{prefix}.params.{name}", best_params[name]) for name in sorted(best_params))
    return tags
