"""MLflow's search filters and order_by for registered models and model versions, compiled to
`Q` and ORDER BY expressions (mlflow.utils.search_utils.SearchModelUtils and
SearchModelVersionUtils define the grammar):

    name LIKE 'fraud%' AND tags.team = 'risk'
    name = 'fraud' AND run_id IN ('a1…', 'b2…') AND version_number > 2

Comparisons are joined by AND. Each compiles through the run filter language's one
operator -> Q mapping (tracker/filtering/lookups.py), so a LIKE pattern means the same everywhere.
- registered models: `name` (=, !=, LIKE, ILIKE, IN, NOT IN), `tags.<key>` (=, !=, LIKE, ILIKE);
- model versions: `name`, `run_id` (those two also IN, NOT IN), `source_path`, `tags.<key>`,
  and the numbers `version_number`, `creation_timestamp`, `last_updated_timestamp`.
"""

import re
from dataclasses import dataclass

from django.db.models import Exists, F, Model, OuterRef, Q

from registry.models import ModelVersionTag, RegisteredModelTag
from tracker.errors import InvalidParameterValue
from tracker.filtering.flat import split_column
from tracker.filtering.lookups import condition

_TOKEN = re.compile(
    r"""(?:
      (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<operator><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<column>(?:[A-Za-z_]+\.)?(?:`[^`]+`|[A-Za-z_][\w.\-:/]*))
    )""",
    re.VERBOSE,
)
_STRING_OPERATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_TAG_OPERATORS = ("=", "!=", "LIKE", "ILIKE")
_NUMERIC_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
_TAG_PREFIXES = ("tags.", "tag.")
_ATTRIBUTE_PREFIXES = ("attributes.", "attribute.", "attr.")
# MLflow keeps prompts in the registry as models with this tag; searches leave them out unless
# the filter asks about the tag (the client adds `tag.`mlflow.prompt.is_prompt` != 'true'`).
PROMPT_TAG = "mlflow.prompt.is_prompt"


@dataclass(frozen=True)
class SearchSpec:
    """What one search may filter on: string attribute -> (field, operators), numeric
    attribute -> field, and the tag model with its link to the searched row."""

    noun: str
    strings: dict[str, tuple[str, tuple[str, ...]]]
    numbers: dict[str, str]
    tag_model: type[Model]
    tag_link: str
    order_keys: dict[str, str]
    default_order: tuple[str, ...]
    tie_breakers: tuple[str, ...]


REGISTERED_MODELS = SearchSpec(
    noun="registered model",
    strings={"name": ("name", _STRING_OPERATORS)},
    numbers={},
    tag_model=RegisteredModelTag,
    tag_link="registered_model",
    order_keys={
        "name": "name",
        "timestamp": "last_updated_time",
        "last_updated_timestamp": "last_updated_time",
        "creation_timestamp": "creation_time",
    },
    default_order=("name",),
    tie_breakers=("name",),
)
MODEL_VERSIONS = SearchSpec(
    noun="model version",
    strings={
        "name": ("registered_model__name", _STRING_OPERATORS),
        "run_id": ("run_id", _STRING_OPERATORS),
        "source_path": ("source", _TAG_OPERATORS),
    },
    numbers={
        "version_number": "version",
        "creation_timestamp": "creation_time",
        "last_updated_timestamp": "last_updated_time",
    },
    tag_model=ModelVersionTag,
    tag_link="version",
    order_keys={
        "name": "registered_model__name",
        "version_number": "version",
        "creation_timestamp": "creation_time",
        "last_updated_timestamp": "last_updated_time",
    },
    # MLflow's default: most recently updated first, then by name and newest version.
    default_order=("-last_updated_time", "registered_model__name", "-version"),
    tie_breakers=("registered_model__name", "-version"),
)


class _Tokens:
    def __init__(self, text: str, spec: SearchSpec):
        self.text, self.spec, self.items, at = text, spec, [], 0
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at == len(text):
                break
            match = _TOKEN.match(text, at)
            if not match:
                raise self.error(at, "a column, an operator or a value")
            self.items.append((match.lastgroup, match.group(match.lastgroup), at))
            at = match.end()
        self.at = 0

    def error(self, position: int, expected: str) -> InvalidParameterValue:
        text = self.text
        found = repr(text[position : position + 20]) if position < len(text) else "the end of the filter"
        return InvalidParameterValue(
            f"Invalid {self.spec.noun} filter at position {position}: expected {expected} but found {found}"
        )

    def peek(self) -> tuple[str, str, int]:
        if self.at < len(self.items):
            return self.items[self.at]
        return ("end", "", len(self.text))

    def next(self) -> tuple[str, str, int]:
        token = self.peek()
        self.at += 1
        return token


def _unquote(token: str) -> str:
    quote = token[0]
    body = token[1:-1].replace(quote * 2, quote)
    return re.sub(r"\\(['\"\\])", r"\1", body)


def _column(token: str) -> tuple[str, str]:
    return split_column(token, _TAG_PREFIXES, _ATTRIBUTE_PREFIXES)


def _operator(tokens: _Tokens, allowed: tuple[str, ...], column: str) -> str:
    kind, text, position = tokens.next()
    operator = text.upper()
    if kind == "column" and operator == "NOT":
        kind, text, _ = tokens.next()
        operator = "NOT " + text.upper()
    operator = "!=" if operator == "<>" else operator
    if kind not in ("operator", "column") or operator not in allowed:
        raise tokens.error(position, f"an operator for {column} ({', '.join(allowed)})")
    return operator


def _string_list(tokens: _Tokens) -> tuple[str, ...]:
    kind, text, position = tokens.next()
    if kind != "punct" or text != "(":
        raise tokens.error(position, "'(' to start the list of values, as in IN ('a', 'b')")
    values = []
    while True:
        kind, text, position = tokens.next()
        if kind != "string":
            raise tokens.error(position, "a quoted string in the list of values")
        values.append(_unquote(text))
        kind, text, position = tokens.next()
        if kind == "punct" and text == ")":
            return tuple(values)
        if kind != "punct" or text != ",":
            raise tokens.error(position, "',' or ')'")


def _comparison(tokens: _Tokens) -> Q:
    spec = tokens.spec
    kind, text, position = tokens.next()
    columns = ", ".join([*spec.strings, *spec.numbers, "tags.<key>"])
    if kind != "column" or text.upper() in ("AND", "NOT"):
        raise tokens.error(position, f"a column ({columns})")
    entity, key = _column(text)
    if entity == "tag":
        operator = _operator(tokens, _TAG_OPERATORS, text)
        kind, value, position = tokens.next()
        if kind != "string":
            raise tokens.error(position, "a quoted string")
        rows = spec.tag_model.objects.filter(**{spec.tag_link: OuterRef("pk"), "key": key})
        if key == PROMPT_TAG and operator == "!=":
            # "Not a prompt": most models lack the tag, and `!=` alone would match only those that have it.
            return ~Q(Exists(rows.filter(value=_unquote(value))))
        return Q(Exists(rows.filter(condition("value", operator, _unquote(value)))))
    if key in spec.numbers:
        operator = _operator(tokens, _NUMERIC_OPERATORS, key)
        kind, value, position = tokens.next()
        if kind != "number" or "." in value:
            raise tokens.error(position, f"an integer to compare {key} with")
        return condition(spec.numbers[key], operator, int(value))
    if key not in spec.strings:
        raise tokens.error(position, f"a column ({columns})")
    field_name, allowed = spec.strings[key]
    operator = _operator(tokens, allowed, key)
    if operator in ("IN", "NOT IN"):
        return condition(field_name, operator, _string_list(tokens))
    kind, value, position = tokens.next()
    if kind != "string":
        raise tokens.error(position, f"a quoted string to compare {key} with")
    return condition(field_name, operator, _unquote(value))


def search_filter(text: str | None, spec: SearchSpec) -> Q:
    """A Q for an MLflow registry filter; empty text matches everything but prompts."""
    if PROMPT_TAG not in (text or ""):
        text = (
            f"{text} AND tags.`{PROMPT_TAG}` != 'true'" if text and text.strip() else f"tags.`{PROMPT_TAG}` != 'true'"
        )
    tokens = _Tokens(text, spec)
    condition = _comparison(tokens)
    while tokens.peek()[0] != "end":
        kind, word, position = tokens.next()
        if kind != "column" or word.upper() != "AND":
            raise tokens.error(position, "AND or the end of the filter")
        condition &= _comparison(tokens)
    return condition


def search_ordering(order_by: list[str], spec: SearchSpec) -> list:
    """ORDER BY expressions for MLflow order_by clauses ("name", "last_updated_timestamp DESC");
    without any, the spec's default order. Its tie breakers and then the primary key keep
    pages stable."""
    expressions, seen = [], set()
    for clause in order_by:
        parts = clause.split()
        column = _column(parts[0])[1] if parts else ""
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if column not in spec.order_keys or len(parts) > 2 or direction not in ("ASC", "DESC"):
            raise InvalidParameterValue(
                f"Invalid order_by clause {clause!r}: expected one of {', '.join(spec.order_keys)}, "
                "optionally followed by ASC or DESC"
            )
        field_name = spec.order_keys[column]
        if field_name in seen:
            raise InvalidParameterValue(f"`order_by` contains duplicate fields: {order_by}")
        seen.add(field_name)
        expressions.append(F(field_name).desc() if direction == "DESC" else F(field_name).asc())
    for default in spec.tie_breakers if order_by else spec.default_order:
        if default.lstrip("-") not in seen:
            expressions.append(F(default[1:]).desc() if default.startswith("-") else F(default).asc())
    return [*expressions, F("pk").asc()]
