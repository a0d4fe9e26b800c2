"""MLflow's search_experiments filter and order_by, compiled to `Q` and ORDER BY expressions.

The grammar is MLflow's (mlflow.utils.search_utils.SearchExperimentsUtils), a small cousin of
the run filter language (tracker/filtering/), whose operator mapping and LIKE semantics it shares:

    name LIKE 'sweep%' AND tags.team = 'vision' AND creation_time > 1700000000000

- `name` (or `attribute.name`): =, !=, LIKE, ILIKE against a quoted string;
- `creation_time`, `last_update_time`: =, !=, <, <=, >, >= against an integer;
- `tags.<key>` (backquote a key with spaces: tags.`my key`): =, !=, LIKE, ILIKE.
  As for runs, `!=` matches experiments that have the tag with another value.
Comparisons are joined by AND.
"""

import re

from django.db.models import Exists, F, OuterRef, Q

from tracker.errors import InvalidParameterValue
from tracker.filtering.lookups import condition
from tracker.models import ExperimentTag

_STRING_OPERATORS = ("=", "!=", "LIKE", "ILIKE")
_NUMERIC_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
_ATTRIBUTE_PREFIXES = ("attribute.", "attributes.", "attr.")
_TAG_PREFIXES = ("tags.", "tag.")
_STRING_ATTRIBUTES = {"name": "name"}
_NUMERIC_ATTRIBUTES = {"creation_time": "creation_time", "last_update_time": "last_update_time"}
_ORDER_COLUMNS = {**_STRING_ATTRIBUTES, **_NUMERIC_ATTRIBUTES, "experiment_id": "id"}

_TOKEN = re.compile(
    r"""(?:
      (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<number>-?\d+)
    | (?P<operator><=|>=|!=|<>|=|<|>)
    | (?P<column>(?:[A-Za-z_]+\.)?(?:`[^`]+`|[A-Za-z_][\w.\-:/]*))
    )""",
    re.VERBOSE | re.ASCII,
)


def _error(text: str, position: int, expected: str) -> InvalidParameterValue:
    found = repr(text[position : position + 20]) if position < len(text) else "the end of the filter"
    return InvalidParameterValue(
        f"Invalid experiment filter at position {position}: expected {expected} but found {found}"
    )


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) for each token; unknown characters are an error."""
    tokens, at = [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return tokens
        match = _TOKEN.match(text, at)
        if not match:
            raise _error(text, at, "a column, an operator or a value")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), at))
        at = match.end()


def _unquote(token: str) -> str:
    quote = token[0]
    return token[1:-1].replace(quote * 2, quote)


def _column(token: str) -> tuple[str, str]:
    """("tag", key) or ("attribute", name); `name` alone is an attribute."""
    lowered = token.lower()
    for prefix in _TAG_PREFIXES:
        if lowered.startswith(prefix):
            return "tag", token[len(prefix) :].strip("`")
    for prefix in _ATTRIBUTE_PREFIXES:
        if lowered.startswith(prefix):
            return "attribute", token[len(prefix) :].strip("`")
    return "attribute", token.strip("`")


_COLUMN_TEXT = "name, creation_time, last_update_time or tags.<key>"


def _position(text: str, tokens: list, at: int) -> int:
    return tokens[at][2] if at < len(tokens) else len(text)


def _comparison(text: str, tokens: list, at: int) -> tuple[Q, int]:
    if at >= len(tokens) or tokens[at][0] != "column":
        raise _error(text, _position(text, tokens, at), _COLUMN_TEXT)
    kind, key = _column(tokens[at][1])
    if kind == "attribute" and key not in _STRING_ATTRIBUTES and key not in _NUMERIC_ATTRIBUTES:
        raise _error(text, tokens[at][2], _COLUMN_TEXT)
    numeric = kind == "attribute" and key in _NUMERIC_ATTRIBUTES
    allowed = _NUMERIC_OPERATORS if numeric else _STRING_OPERATORS
    at += 1
    token_kind, operator, _ = tokens[at] if at < len(tokens) else ("end", "", len(text))
    operator = "!=" if operator == "<>" else operator.upper()
    if token_kind not in ("operator", "column") or operator not in allowed:
        raise _error(text, _position(text, tokens, at), f"an operator for {tokens[at - 1][1]} ({', '.join(allowed)})")
    at += 1
    expected_value = "an integer" if numeric else "a quoted string"
    if at >= len(tokens) or tokens[at][0] != ("number" if numeric else "string"):
        raise _error(text, _position(text, tokens, at), expected_value)
    value = int(tokens[at][1]) if numeric else _unquote(tokens[at][1])
    if kind == "tag":
        rows = ExperimentTag.objects.filter(experiment=OuterRef("pk"), key=key)
        return Q(Exists(rows.filter(condition("value", operator, value)))), at + 1
    field_name = _NUMERIC_ATTRIBUTES.get(key) or _STRING_ATTRIBUTES[key]
    return condition(field_name, operator, value), at + 1


def experiment_filter(text: str | None) -> Q:
    """A Q on Experiment for an MLflow experiment filter; empty text matches every experiment."""
    if not text or not text.strip():
        return Q()
    tokens = _tokens(text)
    condition, at = _comparison(text, tokens, 0)
    while at < len(tokens):
        kind, word, position = tokens[at]
        if kind != "column" or word.upper() != "AND":
            raise _error(text, position, "AND or the end of the filter")
        more, at = _comparison(text, tokens, at + 1)
        condition &= more
    return condition


def experiment_ordering(order_by: list[str]) -> list:
    """ORDER BY expressions for MLflow order_by clauses ("name", "creation_time DESC",
    "attribute.last_update_time ASC", "experiment_id"); the default is newest first, as
    MLflow. experiment_id ASC always breaks ties, so pages are stable."""
    expressions = []
    for clause in order_by:
        parts = clause.split()
        column = parts[0] if parts else ""
        for prefix in _ATTRIBUTE_PREFIXES:
            if column.lower().startswith(prefix):
                column = column[len(prefix) :]
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if column not in _ORDER_COLUMNS or len(parts) > 2 or direction not in ("ASC", "DESC"):
            raise InvalidParameterValue(
                f"Invalid order_by clause {clause!r}: expected one of {', '.join(_ORDER_COLUMNS)}, "
                "optionally followed by ASC or DESC"
            )
        field = F(_ORDER_COLUMNS[column])
        expressions.append(field.desc() if direction == "DESC" else field.asc())
    if not expressions:
        expressions.append(F("creation_time").desc())
    return [*expressions, F("id").asc()]
