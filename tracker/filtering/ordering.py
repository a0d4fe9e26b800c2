"""MLflow's `order_by` clauses for runs, as ORDER BY expressions."""

from django.db.models import Case, F, FilteredRelation, OuterRef, Q, Subquery, Value, When
from django.db.models.expressions import OrderBy
from django.db.models.functions import Substr

from tracker.errors import InvalidParameterValue
from tracker.filtering.ast import (
    ATTRIBUTES,
    DATASETS,
    MAX_ORDER_BY_CLAUSES,
    NUMERIC_ATTRIBUTES,
    STRING_ATTRIBUTES,
    Column,
    FilterError,
)
from tracker.filtering.compiler import KEYED_VALUES
from tracker.filtering.lexer import check_text
from tracker.filtering.parser import Parser
from tracker.models import INDEXED_VALUE_CHARS, LatestMetric, Param, RunSummary, RunTag


def bounded_order_by(order_by: list[str] | str | None) -> list[str]:
    """The clauses of `order_by` (one string or a list), refused past MAX_ORDER_BY_CLAUSES: each
    clause is a join and a sort key, so their number bounds a request's work."""
    clauses = [order_by] if isinstance(order_by, str) else list(order_by or ())
    if len(clauses) > MAX_ORDER_BY_CLAUSES:
        raise InvalidParameterValue(f"Invalid order_by: {len(clauses)} clauses; the limit is {MAX_ORDER_BY_CLAUSES}")
    return clauses


def parse_order_clause(text: str) -> tuple[Column, bool]:
    """`column [ASC|DESC]` → (column, descending)."""
    shown = text[:60] if isinstance(text, str) else text
    subject = f"order_by clause {shown!r}"
    parser = Parser(check_text(text, subject), subject=subject, noun="clause")
    column = parser.column("a column to sort by, such as metrics.<key>, params.<key> or start_time")
    if column.entity == DATASETS:
        # A run has any number of datasets, so it has no one value to sort by (MLflow has none either).
        raise FilterError(
            position=column.position,
            expected="a column to sort by, such as metrics.<key>, params.<key> or start_time",
            found=str(column),
            problem=f"cannot sort by {column}: a run may have logged any number of datasets",
            subject=subject,
        )
    token = parser.tokens.peek()
    descending = False
    if token.is_keyword("ASC", "DESC"):
        descending = parser.tokens.next().text.upper() == "DESC"
    parser.expect_end("ASC, DESC or the end of the clause")
    return column, descending


def sort_values(model, value) -> list:
    """The sort keys of one keyed value. A param's or tag's text sorts by its first
    INDEXED_VALUE_CHARS characters, then whole: the (key, value) index holds that prefix, so a
    page can walk the index in this order (paging.py). It is the value's own order for every
    value shorter than the prefix, and for all values under a byte-wise collation (SQLite, and
    PostgreSQL's C collations); only two long values under a linguistic collation can differ."""
    if model in (Param, RunTag):
        return [Substr(value, 1, INDEXED_VALUE_CHARS), value]
    return [value]


def _sort_values(column: Column) -> list:
    if column.entity == ATTRIBUTES:
        return [F(STRING_ATTRIBUTES.get(column.key) or NUMERIC_ATTRIBUTES[column.key])]
    model, field_name = KEYED_VALUES[column.entity]
    # One row per run and key (a unique constraint); [:1] only tells the database so.
    rows = model.objects.filter(run=OuterRef("pk"), key=column.key).values(field_name)[:1]
    return sort_values(model, Subquery(rows))


def nan_before_missing(column: Column) -> bool:
    """Whether `column` is a metric: after its values, a run that logged it as NaN (stored as
    NULL) comes before one that never logged it, in both directions, as MLflow's stores sort
    them, so a script that cuts a sweep's ranking with max_results gets the same runs."""
    return column.entity != ATTRIBUTES and KEYED_VALUES[column.entity][0] is LatestMetric


def never_logged(alias: str) -> Case:
    """The sort key that puts NaN before missing, on a joined metric row `alias`: 1 for a run
    without the row, 0 for one with it (NaN included)."""
    return Case(When(**{f"{alias}__id__isnull": True}, then=Value(1)), default=Value(0))


# The Run relation that reaches each keyed model, for the joins of order_runs and paging.py.
RELATION_TO = {LatestMetric: "latest_metrics", RunSummary: "summaries", Param: "params", RunTag: "tags"}


def order_runs(runs, order_by: list[str]):
    """`runs` ordered by MLflow `order_by` clauses, as order_by_expressions orders them but with
    a metric's NaNs before the runs without it (nan_before_missing: free over the join), and
    each keyed value reached by a LEFT JOIN on (run, key) instead of a subquery per row: over
    100,000 runs the database sorts one hash join (~3x faster on PostgreSQL) rather than
    probing an index once per run. (run, key) is unique, so the join never repeats a run."""
    order_by = bounded_order_by(order_by)
    ordering = []
    for index, clause in enumerate(order_by or ()):
        column, descending = parse_order_clause(clause)
        if column.entity == ATTRIBUTES:
            values = _sort_values(column)
        else:
            model, field_name = KEYED_VALUES[column.entity]
            relation, alias = RELATION_TO[model], f"order_by_{index}"
            runs = runs.alias(**{alias: FilteredRelation(relation, condition=Q(**{f"{relation}__key": column.key}))})
            values = sort_values(model, F(f"{alias}__{field_name}"))
        ordering += [OrderBy(value, descending=descending, nulls_last=True) for value in values]
        if nan_before_missing(column):
            ordering.append(OrderBy(never_logged(alias)))
    return runs.order_by(*ordering, F("start_time").desc(nulls_last=True), F("run_id").asc())


def order_by_expressions(order_by: list[str]) -> list[OrderBy]:
    """ORDER BY expressions for MLflow `order_by` clauses ("metrics.`my metric` DESC",
    "params.p ASC", "start_time"), then start_time DESC and run_id ASC so pages are stable.
    A missing value, and a NaN metric (stored as NULL), sorts last in both directions.

    The pages' order (a tree's siblings sorted by a column). Unlike the APIs' (order_runs,
    paging.py), it leaves a metric's NaNs among the runs without it: telling them apart is a second
    correlated probe per run, which took expanding a 10,000-child parent sorted by a metric from
    32 to 48 ms (bench/million.py's data, 2026-12-05); only a script's max_results cut depends on
    where the NaNs fall."""
    order_by = bounded_order_by(order_by)
    expressions = []
    for clause in order_by or ():
        column, descending = parse_order_clause(clause)
        expressions += [OrderBy(value, descending=descending, nulls_last=True) for value in _sort_values(column)]
    return [*expressions, F("start_time").desc(nulls_last=True), F("run_id").asc()]
