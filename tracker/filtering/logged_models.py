"""MLflow's search_logged_models: its filter, datasets and order_by, compiled to a queryset.

The grammar is MLflow's (mlflow/utils/search_logged_model_utils.py), a small cousin
of the run filter language (this package), whose LIKE semantics it shares:

    name = 'model' AND metrics.accuracy > 0.9 AND params.alpha = '0.5' AND status = 'READY'

- attributes: `name`, `model_id`, `model_type`, `status`, `source_run_id`: =, !=, LIKE, ILIKE,
  IN, NOT IN against strings; `creation_timestamp` (`creation_time`) and
  `last_updated_timestamp` (`last_updated_time`): =, !=, <, <=, >, >= against an integer;
- `metrics.<key>`: =, !=, <, <=, >, >= against a number, matched by ANY point the model logged
  for the key (not its latest: MLflow's store joins on every point), on the given datasets only
  when the request names some;
- `params.<key>`, `tags.<key>` (backquote a key with spaces): as the string attributes; a model
  without the key never matches, not even `!=` or NOT IN.
Comparisons are joined by AND; each is matched on its own (two metric comparisons may match
two different points). (Used by the client's `runs:/<run_id>/<name>` resolution:
`name = '<name>'` within the run's experiment.)
"""

import re
from dataclasses import dataclass

from django.db.models import Exists, F, FloatField, OuterRef, Q, QuerySet, Subquery

from tracker.errors import InvalidParameterValue
from tracker.filtering.flat import filter_error, tokenize
from tracker.filtering.lookups import condition
from tracker.models import LoggedModelMetric, LoggedModelParam, LoggedModelStatus, LoggedModelTag

# MLflow's own sets (mlflow.utils.search_logged_model_utils.Entity.validate_op).
_STRING_OPERATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_NUMERIC_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
_STRING_ATTRIBUTES = {
    "name": "name",
    "model_type": "model_type",
    "status": "status",
    "model_id": "model_id",
    "source_run_id": "source_run__run_id",
}
_NUMERIC_ATTRIBUTES = {
    "creation_timestamp": "creation_time",
    "creation_time": "creation_time",
    "last_updated_timestamp": "last_updated_time",
    "last_updated_time": "last_updated_time",
}
_ORDER_ATTRIBUTES = {**_STRING_ATTRIBUTES, **_NUMERIC_ATTRIBUTES}
_ENTITIES = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
}
_COLUMN_TEXT = (
    "name, model_id, model_type, status, source_run_id, creation_timestamp, last_updated_timestamp, "
    "metrics.<key>, params.<key> or tags.<key>"
)
_TOKEN = re.compile(
    r"""(?:
      (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<operator><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<column>(?:[A-Za-z_]+\.)?(?:`[^`]+`|[A-Za-z_][\w.\-:/]*))
    )""",
    re.VERBOSE | re.ASCII,
)
MAX_FILTER_LENGTH = 10_000
MAX_COMPARISONS = 50


@dataclass(frozen=True)
class DatasetFilter:
    name: str
    digest: str | None = None


def _error(text: str, position: int, expected: str) -> InvalidParameterValue:
    return filter_error("logged model", text, position, expected)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    return tokenize(text, _TOKEN, "logged model")


def _unquote(token: str) -> str:
    return token[1:-1].replace(token[0] * 2, token[0])


def _column(token: str) -> tuple[str, str]:
    """(entity, key): ("attribute", name), ("metric", key), ("param", key) or ("tag", key)."""
    entity, dot, key = token.partition(".")
    if dot and entity.lower() in _ENTITIES and key:
        return _ENTITIES[entity.lower()], key.strip("`")
    return "attribute", token.strip("`")


class _Compiler:
    """Walks the tokens of one filter, building its Q."""

    def __init__(self, text: str, datasets: list[DatasetFilter]):
        self.text = text
        self.tokens = _tokens(text)
        self.datasets = datasets
        self.at = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "", len(self.text))

    def take(self, kinds: tuple[str, ...], expected: str) -> tuple[str, str, int]:
        token = self.peek()
        if token[0] not in kinds:
            raise _error(self.text, token[2], expected)
        self.at += 1
        return token

    def filter(self) -> Q:
        matched = self.comparison()
        comparisons = 1
        while self.at < len(self.tokens):
            kind, word, position = self.peek()
            if kind != "column" or word.upper() != "AND":
                raise _error(self.text, position, "AND or the end of the filter")
            self.at += 1
            comparisons += 1
            if comparisons > MAX_COMPARISONS:
                raise _error(self.text, position, f"at most {MAX_COMPARISONS} comparisons")
            matched &= self.comparison()
        return matched

    def operator(self, column: str, allowed: tuple[str, ...]) -> str:
        kind, word, position = self.take(("operator", "column"), f"an operator for {column}")
        operator = "!=" if word == "<>" else word.upper()
        if operator == "NOT" and self.peek()[0] == "column" and self.peek()[1].upper() == "IN":
            self.at += 1
            operator = "NOT IN"
        if operator not in allowed:
            raise _error(self.text, position, f"an operator for {column} ({', '.join(allowed)})")
        return operator

    def comparison(self) -> Q:
        _, token, _ = self.take(("column",), _COLUMN_TEXT)
        entity, key = _column(token)
        if entity == "metric":
            operator = self.operator(token, _NUMERIC_OPERATORS)
            value = float(self.take(("number",), "a number")[1])
            points = LoggedModelMetric.objects.filter(model=OuterRef("pk"), key=key)
            if self.datasets:
                points = points.filter(on_any_dataset(self.datasets))
            # One EXISTS per comparison, served by the (model, key, …) index.
            return Q(Exists(points.filter(condition("value", operator, value))))
        if entity in ("param", "tag"):
            operator = self.operator(token, _STRING_OPERATORS)
            value = self.string_operand(operator)
            model = LoggedModelParam if entity == "param" else LoggedModelTag
            rows = model.objects.filter(model=OuterRef("pk"), key=key)
            return Q(Exists(rows.filter(condition("value", operator, value))))
        if key in _NUMERIC_ATTRIBUTES:
            operator = self.operator(token, _NUMERIC_OPERATORS)
            number = self.take(("number",), "an integer")[1]
            if not re.fullmatch(r"[+-]?\d{1,19}", number):
                raise _error(self.text, self.tokens[self.at - 1][2], "an integer")
            return condition(_NUMERIC_ATTRIBUTES[key], operator, int(number))
        if key in _STRING_ATTRIBUTES:
            operator = self.operator(token, _STRING_OPERATORS)
            value = self.string_operand(operator)
            if key == "status":
                value = [_status(v) for v in value] if isinstance(value, list) else _status(value)
            return condition(_STRING_ATTRIBUTES[key], operator, value)
        raise _error(self.text, self.tokens[self.at - 1][2], _COLUMN_TEXT)

    def string_operand(self, operator: str) -> str | list[str]:
        """A quoted string, or the list IN and NOT IN take."""
        if operator in ("IN", "NOT IN"):
            return self.string_list()
        return _unquote(self.take(("string",), "a quoted string")[1])

    def string_list(self) -> list[str]:
        """A Python tuple's literal, as MLflow reads it: `()`, `('a',)` and `('a', 'b')` are
        all lists (so f"name IN {tuple(names)}" works)."""
        if self.take(("punct",), "'(' to start the list")[1] != "(":
            raise _error(self.text, self.tokens[self.at - 1][2], "'(' to start the list")
        values = []
        while self.peek()[1] != ")":
            values.append(_unquote(self.take(("string",), "a quoted string or ')'")[1]))
            if self.peek()[1] != ",":
                break
            self.at += 1
        if self.take(("punct",), "',' or ')' to close the list")[1] != ")":
            raise _error(self.text, self.tokens[self.at - 1][2], "',' or ')' to close the list")
        return values


# What MLflow's store holds in its integer status column: there `status = '2'` is the only status
# filter that matches (the column compared with 'READY' never does).
_STATUS_CODES = {"1": LoggedModelStatus.PENDING, "2": LoggedModelStatus.READY, "3": LoggedModelStatus.FAILED}


def _status(value: str) -> str:
    """`READY`, MLflow's enum name `LOGGED_MODEL_READY` (`UPLOAD_FAILED` is stored as FAILED), or
    MLflow's stored code `2`."""
    name = value.removeprefix("LOGGED_MODEL_")
    return LoggedModelStatus.FAILED if name == "UPLOAD_FAILED" else _STATUS_CODES.get(name, name)


def on_any_dataset(datasets: list[DatasetFilter]) -> Q:
    """A LoggedModelMetric logged on one of `datasets` (its name, and its digest when given)."""
    on_any = Q()
    for dataset in datasets:
        on = Q(dataset_name=dataset.name)
        on_any |= on & Q(dataset_digest=dataset.digest) if dataset.digest else on
    return on_any


def latest_metric(key: str, *, dataset_name=None, dataset_digest=None) -> Subquery:
    """The model's latest value of `key` (latest timestamp, then step), as MLflow orders by it;
    only points on the named dataset count when one is given."""
    points = LoggedModelMetric.objects.filter(model=OuterRef("pk"), key=key)
    if dataset_name:
        points = points.filter(dataset_name=dataset_name)
        if dataset_digest:
            points = points.filter(dataset_digest=dataset_digest)
    latest = points.order_by("-timestamp", "-step", "run_id").values("value")[:1]
    return Subquery(latest, output_field=FloatField())


def search_logged_models(
    queryset: QuerySet, *, filter_text: str | None, datasets: list[DatasetFilter], order_by: list[dict]
) -> QuerySet:
    """`queryset` filtered and ordered as search_logged_models asks. Named datasets keep only
    the models with some metric on one of them: MLflow's store adds that when the filter has no
    metric clause, and a metric clause compares values on those datasets only, so the models it
    keeps have one anyway."""
    if filter_text and len(filter_text) > MAX_FILTER_LENGTH:
        raise InvalidParameterValue(f"A filter may be at most {MAX_FILTER_LENGTH} characters long")
    if filter_text and filter_text.strip():
        queryset = queryset.filter(_Compiler(filter_text, datasets).filter())
    if datasets:
        # One EXISTS in the page's query, not a query per model.
        queryset = queryset.filter(
            Exists(LoggedModelMetric.objects.filter(on_any_dataset(datasets), model=OuterRef("pk")))
        )
    return queryset.order_by(*_ordering(order_by))


def _ordering(order_by: list[dict]) -> list:
    """MLflow's order: each clause's column, NULLs last; newest first when no clause orders by
    creation time; model id breaks ties, so pages are stable."""
    expressions = []
    for clause in order_by:
        field_name, ascending = clause["field_name"], clause.get("ascending", True)
        entity, key = _column(field_name)
        if entity == "metric":
            expression = latest_metric(
                key, dataset_name=clause.get("dataset_name"), dataset_digest=clause.get("dataset_digest")
            )
        elif entity == "attribute" and key in _ORDER_ATTRIBUTES:
            expression = F(_ORDER_ATTRIBUTES[key])
        else:
            raise InvalidParameterValue(
                f"Invalid order by field name: {field_name}. Use an attribute "
                f"({', '.join(_ORDER_ATTRIBUTES)}) or metrics.<key>."
            )
        expressions.append(expression.asc(nulls_last=True) if ascending else expression.desc(nulls_last=True))
    if not any(
        _column(c["field_name"]) in (("attribute", "creation_timestamp"), ("attribute", "creation_time"))
        for c in order_by
    ):
        expressions.append(F("creation_time").desc())
    return [*expressions, F("model_id").asc()]
