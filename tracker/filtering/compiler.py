"""A parsed filter compiled to a `Q` on `Run`: `Exists` subqueries over params, tags, latest
metrics, summaries and dataset inputs, never SQL built from strings."""

from django.db.models import Count, Exists, FloatField, OuterRef, Q, Value
from django.db.models.functions import Substr

from tracker.constants import PARENT_RUN_ID_TAG
from tracker.filtering.ast import (
    ATTRIBUTES,
    DATASET_FIELDS,
    DATASETS,
    METRICS,
    NUMERIC_ATTRIBUTES,
    PARAMS,
    STRING_ATTRIBUTES,
    SUMMARY,
    TAGS,
    And,
    Comparison,
    Node,
)
from tracker.filtering.lexer import INT64
from tracker.filtering.lookups import condition
from tracker.filtering.parser import parse_filter
from tracker.models import INDEXED_VALUE_CHARS, LatestMetric, Param, RunDatasetInput, RunSummary, RunTag


def _compile_attribute(comparison: Comparison) -> Q:
    key, operator, value = comparison.column.key, comparison.operator, comparison.value
    if key in NUMERIC_ATTRIBUTES:
        field_name = NUMERIC_ATTRIBUTES[key]
        if operator in ("IS NULL", "IS NOT NULL"):
            return Q(**{f"{field_name}__isnull": operator == "IS NULL"})
        return condition(field_name, operator, _bigint_operand(value))
    field_name = STRING_ATTRIBUTES[key]
    if operator in ("IS NULL", "IS NOT NULL"):
        empty = Q(**{field_name: ""})  # these columns are never NULL; empty is "not set"
        return empty if operator == "IS NULL" else ~empty
    return condition(field_name, operator, value)


def _compile_dataset(comparison: Comparison) -> Q:
    """Runs with some dataset input whose field matches (MLflow's semantics: each comparison is
    its own EXISTS, so two of them may match two different inputs)."""
    field_name, operator = DATASET_FIELDS[comparison.column.key], comparison.operator
    inputs = RunDatasetInput.objects.filter(run=OuterRef("pk"))
    # Only the context can be NULL (every input has a dataset with a name and a digest). An input
    # without a context never matches: not even NOT IN, which Django's negation would let through.
    if comparison.column.key == "context":
        inputs = inputs.filter(context__isnull=False)
    if operator in ("IS NULL", "IS NOT NULL"):
        return ~Q(Exists(inputs)) if operator == "IS NULL" else Q(Exists(inputs))
    return Q(Exists(inputs.filter(condition(field_name, operator, comparison.value))))


def _bigint_operand(value: int | float):
    """An operand for a 64-bit integer column: a fraction or a huge number stays a float
    (Django would truncate it, and SQLite overflows on an integer past 64 bits)."""
    if isinstance(value, int) and value in INT64:
        return value
    return Value(float(value), output_field=FloatField())


# Entity → the model holding one row per run and key, and the field compared.
KEYED_VALUES = {
    METRICS: (LatestMetric, "value"),
    SUMMARY: (RunSummary, "best_value"),
    PARAMS: (Param, "value"),
    TAGS: (RunTag, "value"),
}


def _compile_keyed(comparison: Comparison) -> Q:
    model, field_name = KEYED_VALUES[comparison.column.entity]
    operator, value = comparison.operator, comparison.value
    if _is_parent_run_id_match(comparison):
        # Run.parent_run_id holds this tag's value on every run that has the tag, and "" on the
        # others (tracker/services/ sets, moves and deletes the two together), so a sweep's
        # children are found by one indexed column instead of a subquery on the tags.
        return condition("parent_run_id", operator, value)
    rows = model.objects.filter(run=OuterRef("pk"), key=comparison.column.key)
    if operator == "IS NULL":
        return ~Q(Exists(rows))
    if operator == "IS NOT NULL":
        return Q(Exists(rows))
    if comparison.column.is_numeric:
        value = float(value)
    if operator in ("=", "IN") and model in (Param, RunTag):
        # The (key, value) index covers only the value's first characters (INDEXED_VALUE_CHARS);
        # matching that same prefix expression lets PostgreSQL use it. For a value shorter than
        # the prefix, the prefix match is already exact (a longer stored value has a longer
        # prefix); only long values need the full value compared as well. Not both always: the
        # planner multiplies the two selectivities, guessed 207 of 52,410 runs for a tag 1 run in
        # 4 carries (bench/million.py), and sorted all matches instead of walking an index.
        values = list(value) if operator == "IN" else [value]
        prefixes = [v[:INDEXED_VALUE_CHARS] for v in values]
        rows = rows.alias(value_prefix=Substr("value", 1, INDEXED_VALUE_CHARS)).filter(value_prefix__in=prefixes)
        if any(len(v) >= INDEXED_VALUE_CHARS for v in values):
            rows = rows.filter(condition(field_name, operator, value))
        return Q(Exists(rows))
    rows = rows.filter(condition(field_name, operator, value))
    return Q(Exists(rows))


def _is_parent_run_id_match(comparison: Comparison) -> bool:
    """`tags.mlflow.parentRunId = 'x'` or `IN ('x', …)`: equal to a non-empty value, which only
    runs that carry the tag can be (an empty one would also match every run without it)."""
    if comparison.column.entity != TAGS or comparison.column.key != PARENT_RUN_ID_TAG:
        return False
    values = comparison.value if comparison.operator == "IN" else [comparison.value]
    return comparison.operator in ("=", "IN") and all(values)


# From this many ANDed comparisons of one entity (say tags), they are compiled together: one
# subquery over that entity's rows, grouped by run, instead of an EXISTS each. PostgreSQL plans
# a chain of N EXISTS in far worse than N times the time of one: 200 ANDed tag comparisons
# (inside the documented caps) cost 16 s of CPU, grouped they take milliseconds. Below it, each
# comparison keeps its own EXISTS, the plan the benchmarks measured.
GROUP_AT = 8


def _groupable(node: Node) -> bool:
    return (
        isinstance(node, Comparison)
        and node.column.entity in KEYED_VALUES
        and node.operator not in ("IS NULL", "IS NOT NULL")
        and not _is_parent_run_id_match(node)
    )


def _compile_grouped(entity: str, comparisons: list[Comparison]) -> Q:
    """Runs that have a row for every key named, each satisfying all of its key's comparisons
    ((run, key) is unique, so a key's comparisons all apply to its one row)."""
    model, field_name = KEYED_VALUES[entity]
    by_key: dict[str, Q] = {}
    for comparison in comparisons:
        value = comparison.value
        if comparison.column.is_numeric:
            value = float(value)
        matches = condition(field_name, comparison.operator, value)
        if comparison.operator in ("=", "IN") and model in (Param, RunTag):
            # As in _compile_keyed: the prefix the (key, value) index covers.
            prefixes = [v[:INDEXED_VALUE_CHARS] for v in (value if comparison.operator == "IN" else (value,))]
            matches &= Q(value_prefix__in=prefixes)
        by_key[comparison.column.key] = by_key.get(comparison.column.key, Q()) & matches
    rows = model.objects.all()
    if model in (Param, RunTag):
        rows = rows.alias(value_prefix=Substr("value", 1, INDEXED_VALUE_CHARS))
    any_key = Q()
    for key, matches in by_key.items():
        any_key |= Q(key=key) & matches
    having_every_key = (
        rows.filter(any_key).order_by().values("run").annotate(keys=Count("key")).filter(keys=len(by_key)).values("run")
    )
    return Q(pk__in=having_every_key)


def _compile(node: Node) -> Q:
    if isinstance(node, Comparison):
        if node.column.entity == ATTRIBUTES:
            return _compile_attribute(node)
        if node.column.entity == DATASETS:
            return _compile_dataset(node)
        return _compile_keyed(node)
    if isinstance(node, And):
        by_entity: dict[str, list[Comparison]] = {}
        for child in node.children:
            if _groupable(child):
                by_entity.setdefault(child.column.entity, []).append(child)
        grouped = {entity: found for entity, found in by_entity.items() if len(found) >= GROUP_AT}
        if grouped:
            rest = [
                _compile(child) for child in node.children if not (_groupable(child) and child.column.entity in grouped)
            ]
            return Q(*rest, *(_compile_grouped(entity, found) for entity, found in grouped.items()))
    connector = Q.AND if isinstance(node, And) else Q.OR
    return Q(*(_compile(child) for child in node.children), _connector=connector)


def compile_filter(text: str) -> Q:
    """A Q on Run for a filter; empty text gives Q() (every run). Raises FilterError."""
    return _compile(parse_filter(text))
