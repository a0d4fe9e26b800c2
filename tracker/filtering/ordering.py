"""MLflow's `order_by` clauses for runs, as ORDER BY expressions."""

from django.db.models import F, FilteredRelation, OuterRef, Q, Subquery
from django.db.models.expressions import OrderBy

from tracker.filtering.ast import ATTRIBUTES, NUMERIC_ATTRIBUTES, STRING_ATTRIBUTES, Column
from tracker.filtering.compiler import KEYED_VALUES
from tracker.filtering.lexer import check_text
from tracker.filtering.parser import Parser
from tracker.models import LatestMetric, Param, RunSummary, RunTag


def parse_order_clause(text: str) -> tuple[Column, bool]:
    """`column [ASC|DESC]` → (column, descending)."""
    shown = text[:60] if isinstance(text, str) else text
    subject = f"order_by clause {shown!r}"
    parser = Parser(check_text(text, subject), subject=subject, noun="clause")
    column = parser.column("a column to sort by, such as metrics.<key>, params.<key> or start_time")
    token = parser.tokens.peek()
    descending = False
    if token.is_keyword("ASC", "DESC"):
        descending = parser.tokens.next().text.upper() == "DESC"
    parser.expect_end("ASC, DESC or the end of the clause")
    return column, descending


def _sort_value(column: Column):
    if column.entity == ATTRIBUTES:
        return F(STRING_ATTRIBUTES.get(column.key) or NUMERIC_ATTRIBUTES[column.key])
    model, field_name = KEYED_VALUES[column.entity]
    # One row per run and key (a unique constraint); [:1] only tells the database so.
    rows = model.objects.filter(run=OuterRef("pk"), key=column.key).values(field_name)[:1]
    return Subquery(rows)


# The Run relation that reaches each keyed model, for the joins of order_runs and paging.py.
RELATION_TO = {LatestMetric: "latest_metrics", RunSummary: "summaries", Param: "params", RunTag: "tags"}


def order_runs(runs, order_by: list[str]):
    """`runs` ordered by MLflow `order_by` clauses, as order_by_expressions orders them, but
    each keyed value reached by a LEFT JOIN on (run, key) instead of a subquery per row: over
    100,000 runs the database sorts one hash join (~3x faster on PostgreSQL) rather than
    probing an index once per run. (run, key) is unique, so the join never repeats a run."""
    if isinstance(order_by, str):
        order_by = [order_by]
    ordering = []
    for index, clause in enumerate(order_by or ()):
        column, descending = parse_order_clause(clause)
        if column.entity == ATTRIBUTES:
            value = _sort_value(column)
        else:
            model, field_name = KEYED_VALUES[column.entity]
            relation, alias = RELATION_TO[model], f"order_by_{index}"
            runs = runs.alias(**{alias: FilteredRelation(relation, condition=Q(**{f"{relation}__key": column.key}))})
            value = F(f"{alias}__{field_name}")
        ordering.append(OrderBy(value, descending=descending, nulls_last=True))
    return runs.order_by(*ordering, F("start_time").desc(nulls_last=True), F("run_id").asc())


def order_by_expressions(order_by: list[str]) -> list[OrderBy]:
    """ORDER BY expressions for MLflow `order_by` clauses ("metrics.`my metric` DESC",
    "params.p ASC", "start_time"), then start_time DESC and run_id ASC so pages are stable.
    A missing value, and a NaN metric (stored as NULL), sorts last in both directions."""
    if isinstance(order_by, str):
        order_by = [order_by]
    expressions = []
    for clause in order_by or ():
        column, descending = parse_order_clause(clause)
        expressions.append(OrderBy(_sort_value(column), descending=descending, nulls_last=True))
    return [*expressions, F("start_time").desc(nulls_last=True), F("run_id").asc()]
