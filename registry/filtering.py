"""MLflow's search filters and order_by for registered models and model versions, compiled to
`Q` and ORDER BY expressions (mlflow.utils.search_utils.SearchModelUtils and
SearchModelVersionUtils define the grammar):

    name LIKE 'fraud%' AND tags.team = 'risk'
    name = 'fraud' AND run_id IN ('a1…', 'b2…') AND version_number > 2

A small cousin of the run filter language, read with its parser (tracker/filtering/parser.py):
the same tokens, quoting (a key backquoted or in quotes: tags.`team name`, tags."team"),
operator reading and LIKE semantics (tracker/filtering/lookups.py). Comparisons are joined by AND.
- registered models: `name` (=, !=, LIKE, ILIKE, IN, NOT IN), `tags.<key>` (=, !=, LIKE, ILIKE);
- model versions: `name`, `run_id` (those two also IN, NOT IN), `source_path`, `tags.<key>`,
  and the integers `version_number`, `creation_timestamp`, `last_updated_timestamp` (bare or
  quoted, `version_number = '1'`, as MLflow reads them with int()).
"""

from dataclasses import dataclass

from django.db.models import Exists, F, Model, OuterRef, Q

from registry.models import ModelVersionTag, RegisteredModelTag
from tracker.errors import InvalidParameterValue
from tracker.filtering.ast import MAX_COMPARISONS
from tracker.filtering.flat import split_column
from tracker.filtering.lexer import END, IDENT, NAME, OPERATOR, STRING, WORD, Token, check_text
from tracker.filtering.lookups import condition
from tracker.filtering.parser import Parser

_STRING_OPERATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_TAG_OPERATORS = ("=", "!=", "LIKE", "ILIKE")
_NUMERIC_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
_ENTITIES = {"tags": "tag", "tag": "tag", "attributes": "attribute", "attribute": "attribute", "attr": "attribute"}
# The same words as an order_by column's prefix.
_TAG_PREFIXES = tuple(f"{word}." for word, entity in _ENTITIES.items() if entity == "tag")
_ATTRIBUTE_PREFIXES = tuple(f"{word}." for word, entity in _ENTITIES.items() if entity == "attribute")
# MLflow keeps prompts in the registry as models with this tag set to 'true'; searches leave them
# out unless the filter asks for them (the client adds `tag.`mlflow.prompt.is_prompt` != 'true'`).
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

    @property
    def columns_text(self) -> str:
        return ", ".join([*self.strings, *self.numbers, "tags.<key>"])

    def tag_rows(self, key: str):
        """The searched row's tag `key` (a subquery on its OuterRef)."""
        return self.tag_model.objects.filter(**{self.tag_link: OuterRef("pk"), "key": key})


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


@dataclass(frozen=True)
class _Comparison:
    matches: Q
    tag_key: str | None = None  # for a tag comparison, with its operator and value
    operator: str = ""
    value: str = ""


def _column(parser: Parser, token: Token, spec: SearchSpec) -> tuple[str, str]:
    """("tag", key) or ("attribute", name) for a column token."""
    expected = f"a column ({spec.columns_text})"
    if token.kind == IDENT:
        entity_text, key, _ = token.value
        entity = _ENTITIES.get(entity_text.lower())
        # MLflow quotes keys, never the entity: `tags`.team is refused there.
        if entity is None or not key or token.text.startswith("`"):
            raise parser.error(token, expected)
    elif token.kind in (WORD, NAME):
        entity, key = "attribute", token.value
    else:
        raise parser.error(token, expected)
    if entity == "attribute" and key not in spec.strings and key not in spec.numbers:
        raise parser.error(token, expected)
    return entity, key


def _operator(parser: Parser, column: Token, allowed: tuple[str, ...]) -> str:
    token = parser.tokens.peek()
    # Only what starts one of this column's operators is read on (IS would read on to IS NULL,
    # which no registry column takes).
    if token.kind not in (OPERATOR, WORD) or token.text.upper() not in {op.split()[0] for op in allowed}:
        raise parser.error(token, f"an operator for {column.text} ({', '.join(allowed)})")
    return parser.operator()[1]


def _string(parser: Parser, column: Token) -> str:
    token = parser.tokens.next()
    if token.kind != STRING:
        raise parser.error(token, f"a quoted string to compare {column.text} with")
    return token.value


def _comparison(parser: Parser, spec: SearchSpec) -> _Comparison:
    column = parser.tokens.next()
    entity, key = _column(parser, column, spec)
    if entity == "tag":
        operator = _operator(parser, column, _TAG_OPERATORS)
        value = _string(parser, column)
        return _Comparison(
            Q(Exists(spec.tag_rows(key).filter(condition("value", operator, value)))), key, operator, value
        )
    if key in spec.numbers:
        operator = _operator(parser, column, _NUMERIC_OPERATORS)
        number = parser.integer(f"an integer to compare {column.text} with", quoted_too=True)
        return _Comparison(condition(spec.numbers[key], operator, number))
    field_name, allowed = spec.strings[key]
    operator = _operator(parser, column, allowed)
    if operator in ("IN", "NOT IN"):
        listed = parser.quoted_list(f"a quoted string in the list of values for {column.text}")
        return _Comparison(condition(field_name, operator, tuple(token.value for token in listed)))
    return _Comparison(condition(field_name, operator, _string(parser, column)))


def _comparisons(text: str, spec: SearchSpec) -> list[_Comparison]:
    """The comparisons of a filter. An AND joins them; as in MLflow, which reads the filter as SQL
    and skips every AND, one at either end or doubled joins nothing (`name LIKE 'a%' AND` is
    `name LIKE 'a%'`; the mlflow client appends `AND tag...` to whatever the user wrote)."""
    parser = Parser(text, subject=f"{spec.noun} filter")
    comparisons = []
    while True:
        while parser.tokens.peek().is_keyword("AND"):
            parser.tokens.next()
        token = parser.tokens.peek()
        if token.kind == END:
            return comparisons
        if len(comparisons) == MAX_COMPARISONS:
            raise parser.error(
                token,
                f"at most {MAX_COMPARISONS} comparisons",
                problem=f"a filter may hold at most {MAX_COMPARISONS} comparisons",
            )
        comparisons.append(_comparison(parser, spec))
        token = parser.tokens.peek()
        if token.kind != END and not token.is_keyword("AND"):
            raise parser.error(token, "AND or the end of the filter")


def _asks_for_prompts(comparisons: list[_Comparison]) -> bool:
    """MLflow's rule (its store's _is_querying_prompt): the first comparison on the prompt tag
    decides, and only `= 'true'` or `!= 'false'` asks for prompts."""
    on_prompt_tag = next((c for c in comparisons if c.tag_key == PROMPT_TAG), None)
    return on_prompt_tag is not None and (on_prompt_tag.operator, on_prompt_tag.value.lower()) in (
        ("=", "true"),
        ("!=", "false"),
    )


def search_filter(text: str | None, spec: SearchSpec) -> Q:
    """A Q for an MLflow registry filter; empty text matches everything but prompts.

    Unless the filter asks for prompts, they are left out, and its comparisons on the prompt tag
    are dropped, as MLflow's store drops them: most models lack the tag, so `!= 'true'` or
    `= 'false'` taken as a tag comparison would match only the few that have it."""
    comparisons = _comparisons(check_text(text, f"{spec.noun} filter"), spec)
    asks_for_prompts = _asks_for_prompts(comparisons)
    result = Q() if asks_for_prompts else ~Q(Exists(spec.tag_rows(PROMPT_TAG).filter(value="true")))
    for comparison in comparisons:
        if asks_for_prompts or comparison.tag_key != PROMPT_TAG:
            result &= comparison.matches
    return result


def search_ordering(order_by: list[str], spec: SearchSpec) -> list:
    """ORDER BY expressions for MLflow order_by clauses ("name", "last_updated_timestamp DESC");
    without any, the spec's default order. Its tie breakers and then the primary key keep
    pages stable."""
    expressions, seen = [], set()
    for clause in order_by:
        parts = clause.split()
        column = split_column(parts[0], _TAG_PREFIXES, _ATTRIBUTE_PREFIXES)[1] if parts else ""
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
