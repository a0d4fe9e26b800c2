"""The filter language's vocabulary and syntax tree: its limits, entities, attributes and
operators, the error every stage raises, and the nodes the parser builds."""

import re
from dataclasses import dataclass, field

from tracker.errors import InvalidParameterValue

# Bounds that keep parsing, compiling and the SQL small whatever arrives: the parser recurses
# once per parenthesis, and SQLite refuses expressions nested deeper than 1,000 levels (each
# AND/OR term adds one), so 200 comparisons leave plenty of room.
MAX_FILTER_LENGTH = 10_000
MAX_NESTING = 50
MAX_COMPARISONS = 200
# Sort keys in one order_by (runs and experiments; MLflow sets none): each keyed one is a join,
# and SQLite joins at most 64 tables (70 clauses were a 503 the client retried; 1,600 took
# PostgreSQL 27 s).
MAX_ORDER_BY_CLAUSES = 10

METRICS, PARAMS, TAGS, ATTRIBUTES, SUMMARY, DATASETS = "metrics", "params", "tags", "attributes", "summary", "datasets"
ENTITY_ALIASES = {
    "metrics": METRICS,
    "metric": METRICS,
    "params": PARAMS,
    "param": PARAMS,
    "parameter": PARAMS,
    "parameters": PARAMS,
    "tags": TAGS,
    "tag": TAGS,
    "attributes": ATTRIBUTES,
    "attribute": ATTRIBUTES,
    "attr": ATTRIBUTES,
    "run": ATTRIBUTES,
    "summary": SUMMARY,
    "datasets": DATASETS,
    "dataset": DATASETS,
}
ENTITIES_TEXT = "metrics, params, tags, attributes, summary, datasets"

# `datasets.<field>` → the RunDatasetInput field compared (MLflow's SearchUtils.DATASET_ATTRIBUTES).
DATASET_FIELDS = {"name": "dataset__name", "digest": "dataset__digest", "context": "context"}

# Attribute name in the language → Run field.
STRING_ATTRIBUTES = {
    "run_id": "run_id",
    "run_name": "name",
    "status": "status",
    "user_id": "user_id",
    "artifact_uri": "artifact_uri",
    "lifecycle_stage": "lifecycle_stage",
}
NUMERIC_ATTRIBUTES = {"start_time": "start_time", "end_time": "end_time"}
# MLflow's alternative spellings (mlflow.utils.search_utils.SearchUtils.translate_key_alias).
ATTRIBUTE_ALIASES = {
    "created": "start_time",
    "Created": "start_time",
    "run name": "run_name",
    "Run name": "run_name",
    "Run Name": "run_name",
}
ATTRIBUTES_TEXT = ", ".join([*STRING_ATTRIBUTES, *NUMERIC_ATTRIBUTES, "created"])

NUMERIC_OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "IS NULL", "IS NOT NULL")
STRING_OPERATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL")
ANY_OPERATOR_TEXT = "a comparison operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS)"
COLUMN_TEXT = (
    "a column such as metrics.<key>, params.<key>, tags.<key>, summary.<key>, datasets.name "
    "or an attribute like run_name"
)


class FilterError(InvalidParameterValue):
    """A filter (or order_by clause) that cannot be used: where it goes wrong and what was expected."""

    def __init__(self, *, position: int, expected: str, found: str = "", problem: str = "", subject: str = "filter"):
        self.position = position
        self.expected = expected
        self.found = found
        detail = problem or f"expected {expected} but found {found}"
        super().__init__(f"Invalid {subject} at position {position}: {detail}")


# --- the AST ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    entity: str  # METRICS, PARAMS, TAGS, ATTRIBUTES, SUMMARY or DATASETS
    key: str  # for attributes, the canonical name ("created" becomes "start_time")
    position: int = field(default=0, compare=False)

    @property
    def is_numeric(self) -> bool:
        return self.entity in (METRICS, SUMMARY) or self.key in NUMERIC_ATTRIBUTES

    def __str__(self):
        return f"{self.entity}.{self.key}" if re.fullmatch(r"[\w.]+", self.key) else f"{self.entity}.`{self.key}`"


@dataclass(frozen=True)
class Comparison:
    column: Column
    operator: str  # one of NUMERIC_OPERATORS or STRING_OPERATORS
    value: str | int | float | tuple[str, ...] | None  # a tuple for IN, None for IS [NOT] NULL


@dataclass(frozen=True)
class And:
    children: tuple["Node", ...]  # empty: no filter, every run matches


@dataclass(frozen=True)
class Or:
    children: tuple["Node", ...]


Node = Comparison | And | Or
