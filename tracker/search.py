"""The filter language: MLflow's search_runs grammar plus `OR` and parentheses, compiled to `Q`.

    metrics.loss < 0.5 AND (params.optimizer = 'adam' OR tags.`team name` LIKE 'vision%')

One module serves the MLflow API, the native API and the dashboard's filter box:
`parse_filter` turns text into a small AST, `compile_filter` turns it into a `Q` on `Run`
(`Exists` subqueries over params, tags, latest metrics and summaries; never SQL built from
strings), and `order_by_expressions` does the same for MLflow's `order_by` clauses.

Any input either parses or raises `FilterError`, which names the position and what was
expected there; it is an `InvalidParameterValue`, so every API answers it with HTTP 400.

Semantics (as MLflow's SQL store, where MLflow has a rule):
- `tags.k != 'v'` and `params.k != 'v'` match runs that *have* k with another value;
  `NOT IN` likewise. `IS NULL` is the way to ask for runs without k.
- A metric compares against its latest value. NaN is stored as NULL, so it never matches a
  comparison (not even `!=`); `metrics.k IS NULL` means the run never logged k.
- `summary.k` is the best value of k in the run's subtree (RunSummary.best_value);
  `summary.k IS NULL` means the run has no summary for k (not a parent, or not computed yet).
- For string attributes, which are never NULL, `IS NULL` means empty.
- LIKE: `%` any run of characters, `_` one character, a backslash makes the next one literal.
  LIKE is case-sensitive and ILIKE is not, on both databases (SQLite folds ASCII case only).
- Inside a quoted string, a doubled quote (`'it''s'`) or a backslash before the quote or
  before a backslash stands for that character; other backslashes are kept, so LIKE escapes
  such as `'50\\%'` pass through.
"""

import re
from dataclasses import dataclass, field

from django.db.models import Exists, F, FilteredRelation, FloatField, Lookup, OuterRef, Q, Subquery, Value
from django.db.models.expressions import OrderBy
from django.db.models.functions import Substr

from tracker.constants import PARENT_RUN_ID_TAG
from tracker.errors import InvalidParameterValue
from tracker.models import INDEXED_VALUE_CHARS, LatestMetric, Param, RunSummary, RunTag

# Bounds that keep parsing, compiling and the SQL small whatever arrives: the parser recurses
# once per parenthesis, and SQLite refuses expressions nested deeper than 1,000 levels (each
# AND/OR term adds one), so 200 comparisons leave plenty of room.
MAX_FILTER_LENGTH = 10_000
MAX_NESTING = 50
MAX_COMPARISONS = 200

METRICS, PARAMS, TAGS, ATTRIBUTES, SUMMARY = "metrics", "params", "tags", "attributes", "summary"
_ENTITY_ALIASES = {
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
}
_ENTITIES_TEXT = "metrics, params, tags, attributes, summary"

# Attribute name in the language → Run field.
_STRING_ATTRIBUTES = {
    "run_id": "run_id",
    "run_name": "name",
    "status": "status",
    "user_id": "user_id",
    "artifact_uri": "artifact_uri",
    "lifecycle_stage": "lifecycle_stage",
}
_NUMERIC_ATTRIBUTES = {"start_time": "start_time", "end_time": "end_time"}
# MLflow's alternative spellings (mlflow.utils.search_utils.SearchUtils.translate_key_alias).
_ATTRIBUTE_ALIASES = {
    "created": "start_time",
    "Created": "start_time",
    "run name": "run_name",
    "Run name": "run_name",
    "Run Name": "run_name",
}
_ATTRIBUTES_TEXT = ", ".join([*_STRING_ATTRIBUTES, *_NUMERIC_ATTRIBUTES, "created"])

NUMERIC_OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "IS NULL", "IS NOT NULL")
STRING_OPERATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL")
_ANY_OPERATOR_TEXT = "a comparison operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS)"
_COLUMN_TEXT = "a column such as metrics.<key>, params.<key>, tags.<key>, summary.<key> or an attribute like run_name"


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
    entity: str  # METRICS, PARAMS, TAGS, ATTRIBUTES or SUMMARY
    key: str  # for attributes, the canonical name ("created" becomes "start_time")
    position: int = field(default=0, compare=False)

    @property
    def is_numeric(self) -> bool:
        return self.entity in (METRICS, SUMMARY) or self.key in _NUMERIC_ATTRIBUTES

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


# --- tokens ----------------------------------------------------------------------------------

WORD, NAME, IDENT, STRING, NUMBER, OPERATOR, PUNCT, END, STRAY = (
    "word",
    "name",
    "ident",
    "string",
    "number",
    "operator",
    "punct",
    "end",
    "stray",
)
_OPERATOR_SYMBOLS = ("!=", "<=", ">=", "=", "<", ">")
_WORD_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY_PATTERN = re.compile(r"[\w.\-/:]+")
_NUMBER_PATTERN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Integers up to this many digits stay exact; longer ones become floats (maybe inf), which
# Python's int() would refuse past 4,300 digits anyway.
_MAX_EXACT_DIGITS = 30
_INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str  # as written, for messages
    position: int
    value: object = None  # STRING: the unescaped text; NUMBER: int or float; IDENT: (entity, key, key position)

    def shown(self, noun: str) -> str:
        if self.kind == END:
            return f"the end of the {noun}"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return text if self.kind == STRING else f"'{text}'"

    def is_keyword(self, *words: str) -> bool:
        return self.kind == WORD and self.text.upper() in words


class _Lexer:
    """Tokens on demand, so an error late in the text never hides an earlier one."""

    def __init__(self, text: str, subject: str):
        self.text = text
        self.subject = subject
        self.offset = 0
        self.lookahead: _Token | None = None

    def peek(self) -> _Token:
        if self.lookahead is None:
            self.lookahead = self._scan()
        return self.lookahead

    def next(self) -> _Token:
        token = self.peek()
        self.lookahead = None
        return token

    def _scan(self) -> _Token:
        text, start = self.text, self.offset
        while start < len(text) and text[start].isspace():
            start += 1
        if start == len(text):
            self.offset = start
            return _Token(END, "", start)
        char = text[start]
        if char in "(),":
            kind, value, end = PUNCT, char, start + 1
        elif symbol := next((s for s in _OPERATOR_SYMBOLS if text.startswith(s, start)), None):
            kind, value, end = OPERATOR, symbol, start + len(symbol)
        elif char in "'\"":
            kind, (value, end) = STRING, self._quoted(start)
        elif number := _NUMBER_PATTERN.match(text, start):
            kind, value, end = NUMBER, _number(number.group()), number.end()
        elif char == "`" or _WORD_PATTERN.match(text, start):
            kind, value, end = self._name(start)
        else:
            kind, value, end = STRAY, char, start + 1
        self.offset = end
        return _Token(kind, text[start:end], start, value)

    def _quoted(self, start: int) -> tuple[str, int]:
        text, quote = self.text, self.text[start]
        chars, at = [], start + 1
        while at < len(text):
            char = text[at]
            if char == "\\" and at + 1 < len(text) and text[at + 1] in (quote, "\\"):
                chars.append(text[at + 1])
                at += 2
            elif char == quote and text.startswith(quote, at + 1):
                chars.append(quote)
                at += 2
            elif char == quote:
                return "".join(chars), at + 1
            else:
                chars.append(char)
                at += 1
        raise FilterError(
            position=start,
            expected=f"a closing {quote} to end the string that starts here",
            problem=f"unterminated string: expected a closing {quote} to match the {quote} here",
            subject=self.subject,
        )

    def _name(self, start: int) -> tuple[str, object, int]:
        """A bare word, a `backquoted name`, or `entity.key` with the key bare or quoted."""
        if self.text[start] == "`":
            name, end = self._quoted(start)
            kind = NAME
        else:
            end = _WORD_PATTERN.match(self.text, start).end()
            name, kind = self.text[start:end], WORD
        if not self.text.startswith(".", end):
            return kind, name, end
        key_start = end + 1
        if self.text[key_start : key_start + 1] in ("`", '"', "'"):
            key, end = self._quoted(key_start)
        else:
            bare = _BARE_KEY_PATTERN.match(self.text, key_start)
            key, end = (bare.group(), bare.end()) if bare else ("", key_start)
        return IDENT, (name, key, key_start), end


def _number(text: str) -> int | float:
    digits = text.lstrip("+-")
    if digits.isdigit() and len(digits) <= _MAX_EXACT_DIGITS:
        return int(text)
    return float(text)  # never raises for this syntax; too large gives inf


def _check_text(text, subject: str) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise FilterError(position=0, expected="text", found=type(text).__name__, subject=subject)
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(
            position=MAX_FILTER_LENGTH,
            expected=f"at most {MAX_FILTER_LENGTH} characters",
            problem=f"the text is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH}",
            subject=subject,
        )
    for position, char in enumerate(text):
        # Neither database can take these: PostgreSQL refuses NUL, and a lone surrogate
        # cannot be encoded to send at all.
        if char == "\x00" or "\ud800" <= char <= "\udfff":
            raise FilterError(
                position=position,
                expected="text without NUL or unpaired surrogate characters",
                found=repr(char),
                subject=subject,
            )
    return text


# --- the parser ------------------------------------------------------------------------------


class _Parser:
    """Recursive descent. AND binds tighter than OR:

    filter     := or_expr END
    or_expr    := and_expr (OR and_expr)*
    and_expr   := primary (AND primary)*
    primary    := '(' or_expr ')' | comparison
    comparison := column operator value
    """

    def __init__(self, text: str, subject: str = "filter", noun: str = "filter"):
        self.tokens = _Lexer(text, subject)
        self.subject = subject
        self.noun = noun
        self.nesting = 0
        self.comparisons = 0

    def error(self, token: _Token, expected: str, problem: str = "") -> FilterError:
        return FilterError(
            position=token.position,
            expected=expected,
            found=token.shown(self.noun),
            problem=problem,
            subject=self.subject,
        )

    def parse_filter(self) -> Node:
        if self.tokens.peek().kind == END:
            return And(())
        node = self.or_expr()
        self.expect_end("AND, OR or the end of the filter")
        return node

    def expect_end(self, expected: str) -> None:
        token = self.tokens.peek()
        if token.kind != END:
            raise self.error(token, expected)

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.tokens.peek().is_keyword("OR"):
            self.tokens.next()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self) -> Node:
        children = [self.primary()]
        while self.tokens.peek().is_keyword("AND"):
            self.tokens.next()
            children.append(self.primary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def primary(self) -> Node:
        token = self.tokens.peek()
        if not (token.kind == PUNCT and token.value == "("):
            return self.comparison()
        self.tokens.next()
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(
                token,
                f"at most {MAX_NESTING} levels of parentheses",
                problem=f"parentheses nest more than {MAX_NESTING} levels deep",
            )
        node = self.or_expr()
        closing = self.tokens.next()
        if not (closing.kind == PUNCT and closing.value == ")"):
            raise self.error(closing, f"AND, OR or ')' to close the '(' at position {token.position}")
        self.nesting -= 1
        return node

    def comparison(self) -> Comparison:
        start = self.tokens.peek()
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.error(
                start,
                f"at most {MAX_COMPARISONS} comparisons",
                problem=f"a filter may hold at most {MAX_COMPARISONS} comparisons",
            )
        column = self.column(f"{_COLUMN_TEXT}, or '('")
        operator_token, operator = self.operator()
        allowed = NUMERIC_OPERATORS if column.is_numeric else STRING_OPERATORS
        if operator not in allowed:
            kind = "a number" if column.is_numeric else "a string"
            raise self.error(
                operator_token,
                f"one of {', '.join(allowed)}",
                problem=f"{column} is {kind}, so it cannot be compared with {operator}; "
                f"expected one of {', '.join(allowed)}",
            )
        return Comparison(column, operator, self.value(column, operator))

    def column(self, expected: str) -> Column:
        token = self.tokens.next()
        if token.kind == IDENT:
            entity_text, key, key_position = token.value
            return self.qualified_column(token, entity_text, key, key_position)
        if token.kind == NAME or (token.kind == WORD and not token.is_keyword("AND", "OR", "NOT", "IS", "IN")):
            if token.kind == WORD and token.text.lower() in _ENTITY_ALIASES:
                raise self.error(
                    token,
                    f"a key after '{token.text}.'",
                    problem=f"expected '.' and a key after '{token.text}', as in {token.text}.<key>",
                )
            return self.attribute(token, token.value, token.position)
        raise self.error(token, expected)

    def qualified_column(self, token: _Token, entity_text: str, key: str, key_position: int) -> Column:
        entity = _ENTITY_ALIASES.get(entity_text.lower())
        if entity is None:
            raise FilterError(
                position=token.position,
                expected=f"an entity type ({_ENTITIES_TEXT})",
                found=f"'{entity_text}'",
                problem=f"Invalid entity type '{entity_text}'. Valid: {_ENTITIES_TEXT}",
                subject=self.subject,
            )
        if not key:
            raise FilterError(
                position=key_position,
                expected=f"a key after '{entity_text}.'",
                found="nothing",
                problem=f"expected a key after '{entity_text}.' (backquote a key with spaces: {entity_text}.`my key`)",
                subject=self.subject,
            )
        if entity == ATTRIBUTES:
            return self.attribute(token, key, key_position)
        return Column(entity, key, token.position)

    def attribute(self, token: _Token, name: str, position: int) -> Column:
        name = _ATTRIBUTE_ALIASES.get(name, name)
        if name not in _STRING_ATTRIBUTES and name not in _NUMERIC_ATTRIBUTES:
            raise FilterError(
                position=position,
                expected=f"an attribute ({_ATTRIBUTES_TEXT})",
                found=f"'{name}'",
                problem=f"Invalid attribute key '{name}'. Valid: {_ATTRIBUTES_TEXT} "
                f"(or use {', '.join(e + '.<key>' for e in (METRICS, PARAMS, TAGS, SUMMARY))})",
                subject=self.subject,
            )
        return Column(ATTRIBUTES, name, token.position)

    def operator(self) -> tuple[_Token, str]:
        token = self.tokens.next()
        if token.kind == OPERATOR:
            return token, token.value
        if token.is_keyword("LIKE", "ILIKE", "IN"):
            return token, token.text.upper()
        if token.is_keyword("NOT"):
            self.expect_keyword("IN", "IN after NOT")
            return token, "NOT IN"
        if token.is_keyword("IS"):
            if self.tokens.peek().is_keyword("NOT"):
                self.tokens.next()
                self.expect_keyword("NULL", "NULL after IS NOT")
                return token, "IS NOT NULL"
            self.expect_keyword("NULL", "NULL or NOT NULL after IS")
            return token, "IS NULL"
        raise self.error(token, _ANY_OPERATOR_TEXT)

    def expect_keyword(self, word: str, expected: str) -> None:
        token = self.tokens.next()
        if not token.is_keyword(word):
            raise self.error(token, expected)

    def value(self, column: Column, operator: str):
        if operator in ("IS NULL", "IS NOT NULL"):
            return None
        if operator in ("IN", "NOT IN"):
            return self.string_list(column)
        token = self.tokens.next()
        if column.is_numeric:
            if token.kind != NUMBER:
                raise self.error(token, f"a number to compare {column} with")
            return token.value
        if token.kind != STRING:
            raise self.error(token, f"a quoted string to compare {column} with (e.g. 'my-value')")
        return token.value

    def string_list(self, column: Column) -> tuple[str, ...]:
        opening = self.tokens.next()
        if not (opening.kind == PUNCT and opening.value == "("):
            raise self.error(opening, "'(' to start the list of values, as in IN ('a', 'b')")
        values = []
        while True:
            token = self.tokens.next()
            if token.kind != STRING:
                raise self.error(token, f"a quoted string in the list of values for {column}")
            values.append(token.value)
            separator = self.tokens.next()
            if separator.kind == PUNCT and separator.value == ")":
                return tuple(values)
            if not (separator.kind == PUNCT and separator.value == ","):
                raise self.error(separator, f"',' or ')' to close the list opened at position {opening.position}")


def parse_filter(text: str) -> Node:
    """The AST of a filter. Empty or blank text is no filter: an empty `And` (every run)."""
    return _Parser(_check_text(text, "filter")).parse_filter()


# --- compiling to Q --------------------------------------------------------------------------


class NotEqual(Lookup):
    """`<>`, where NULL never matches: Django's `~Q(field=value)` would let NULL (a NaN
    metric, a missing end time) through as "not equal"."""

    lookup_name = "runtree_ne"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} <> {rhs}", [*lhs_params, *rhs_params]


class Like(Lookup):
    """Case-sensitive LIKE with the pattern as the user wrote it (Django's own lookups escape
    `%` and `_`)."""

    lookup_name = "runtree_like"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        # PostgreSQL's LIKE is case-sensitive and its default escape character is the backslash.
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} LIKE %s", [*params, _like_pattern(self.rhs)]

    def as_sqlite(self, compiler, connection):
        # SQLite's LIKE ignores case; GLOB is its case-sensitive matcher.
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} GLOB %s", [*params, _glob_pattern(self.rhs)]


class ILike(Lookup):
    """Case-insensitive LIKE, pattern as written."""

    lookup_name = "runtree_ilike"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} ILIKE %s", [*params, _like_pattern(self.rhs)]

    def as_sqlite(self, compiler, connection):
        # SQLite's LIKE folds ASCII case; it has no default escape character.
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} LIKE %s ESCAPE '\\'", [*params, _like_pattern(self.rhs)]


_ANY_RUN, _ANY_CHAR = object(), object()


def _pattern_parts(pattern: str) -> list:
    """A LIKE pattern as literal characters and the two wildcards. A backslash makes the next
    character literal; a trailing one is itself literal (PostgreSQL would refuse it)."""
    parts, at = [], 0
    while at < len(pattern):
        char = pattern[at]
        if char == "\\" and at + 1 < len(pattern):
            parts.append(pattern[at + 1])
            at += 2
            continue
        parts.append(_ANY_RUN if char == "%" else _ANY_CHAR if char == "_" else char)
        at += 1
    return parts


def _like_pattern(pattern: str) -> str:
    return "".join(
        "%" if part is _ANY_RUN else "_" if part is _ANY_CHAR else "\\" + part if part in "%_\\" else part
        for part in _pattern_parts(pattern)
    )


def _glob_pattern(pattern: str) -> str:
    # In GLOB, a one-character set `[x]` matches x literally, `]` included as `[]]`.
    return "".join(
        "*" if part is _ANY_RUN else "?" if part is _ANY_CHAR else f"[{part}]" if part in "*?[]" else part
        for part in _pattern_parts(pattern)
    )


def _condition(field_name: str, operator: str, value) -> Q:
    """`field_name <operator> value` as a Q on the model that holds the field."""
    if operator == "=":
        return Q(**{field_name: value})
    if operator == "!=":
        return Q(NotEqual(F(field_name), value))
    if operator in ("<", "<=", ">", ">="):
        lookup = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[operator]
        return Q(**{f"{field_name}__{lookup}": value})
    if operator == "LIKE":
        return Q(Like(F(field_name), value))
    if operator == "ILIKE":
        return Q(ILike(F(field_name), value))
    if operator == "IN":
        return Q(**{f"{field_name}__in": value})
    if operator == "NOT IN":
        return ~Q(**{f"{field_name}__in": value})
    raise AssertionError(f"the parser let through operator {operator!r}")


def _compile_attribute(comparison: Comparison) -> Q:
    key, operator, value = comparison.column.key, comparison.operator, comparison.value
    if key in _NUMERIC_ATTRIBUTES:
        field_name = _NUMERIC_ATTRIBUTES[key]
        if operator in ("IS NULL", "IS NOT NULL"):
            return Q(**{f"{field_name}__isnull": operator == "IS NULL"})
        return _condition(field_name, operator, _bigint_operand(value))
    field_name = _STRING_ATTRIBUTES[key]
    if operator in ("IS NULL", "IS NOT NULL"):
        empty = Q(**{field_name: ""})  # these columns are never NULL; empty is "not set"
        return empty if operator == "IS NULL" else ~empty
    return _condition(field_name, operator, value)


def _bigint_operand(value: int | float):
    """An operand for a 64-bit integer column: a fraction or a huge number stays a float
    (Django would truncate it, and SQLite overflows on an integer past 64 bits)."""
    if isinstance(value, int) and value in _INT64:
        return value
    return Value(float(value), output_field=FloatField())


# Entity → the model holding one row per run and key, and the field compared.
_KEYED_VALUES = {
    METRICS: (LatestMetric, "value"),
    SUMMARY: (RunSummary, "best_value"),
    PARAMS: (Param, "value"),
    TAGS: (RunTag, "value"),
}


def _compile_keyed(comparison: Comparison) -> Q:
    model, field_name = _KEYED_VALUES[comparison.column.entity]
    operator, value = comparison.operator, comparison.value
    if _is_parent_run_id_match(comparison):
        # Run.parent_run_id holds this tag's value on every run that has the tag, and "" on the
        # others (tracker/ingest.py sets, moves and deletes the two together), so a sweep's
        # children are found by one indexed column instead of a subquery on the tags.
        return _condition("parent_run_id", operator, value)
    rows = model.objects.filter(run=OuterRef("pk"), key=comparison.column.key)
    if operator == "IS NULL":
        return ~Q(Exists(rows))
    if operator == "IS NOT NULL":
        return Q(Exists(rows))
    if comparison.column.is_numeric:
        value = float(value)
    rows = rows.filter(_condition(field_name, operator, value))
    if operator in ("=", "IN") and model in (Param, RunTag):
        # The (key, value) index covers only the value's first characters (INDEXED_VALUE_CHARS);
        # matching that same prefix expression lets PostgreSQL use it. The full value is
        # compared as well, so long values still match exactly.
        prefixes = [v[:INDEXED_VALUE_CHARS] for v in (value if operator == "IN" else (value,))]
        rows = rows.alias(value_prefix=Substr("value", 1, INDEXED_VALUE_CHARS)).filter(value_prefix__in=prefixes)
    return Q(Exists(rows))


def _is_parent_run_id_match(comparison: Comparison) -> bool:
    """`tags.mlflow.parentRunId = 'x'` or `IN ('x', …)`: equal to a non-empty value, which only
    runs that carry the tag can be (an empty one would also match every run without it)."""
    if comparison.column.entity != TAGS or comparison.column.key != PARENT_RUN_ID_TAG:
        return False
    values = comparison.value if comparison.operator == "IN" else [comparison.value]
    return comparison.operator in ("=", "IN") and all(values)


def _compile(node: Node) -> Q:
    if isinstance(node, Comparison):
        if node.column.entity == ATTRIBUTES:
            return _compile_attribute(node)
        return _compile_keyed(node)
    connector = Q.AND if isinstance(node, And) else Q.OR
    return Q(*(_compile(child) for child in node.children), _connector=connector)


def compile_filter(text: str) -> Q:
    """A Q on Run for a filter; empty text gives Q() (every run). Raises FilterError."""
    return _compile(parse_filter(text))


# --- order_by ----------------------------------------------------------------------------------


def _parse_order_clause(text: str) -> tuple[Column, bool]:
    """`column [ASC|DESC]` → (column, descending)."""
    shown = text[:60] if isinstance(text, str) else text
    subject = f"order_by clause {shown!r}"
    parser = _Parser(_check_text(text, subject), subject=subject, noun="clause")
    column = parser.column("a column to sort by, such as metrics.<key>, params.<key> or start_time")
    token = parser.tokens.peek()
    descending = False
    if token.is_keyword("ASC", "DESC"):
        descending = parser.tokens.next().text.upper() == "DESC"
    parser.expect_end("ASC, DESC or the end of the clause")
    return column, descending


def _sort_value(column: Column):
    if column.entity == ATTRIBUTES:
        return F(_STRING_ATTRIBUTES.get(column.key) or _NUMERIC_ATTRIBUTES[column.key])
    model, field_name = _KEYED_VALUES[column.entity]
    # One row per run and key (a unique constraint); [:1] only tells the database so.
    rows = model.objects.filter(run=OuterRef("pk"), key=column.key).values(field_name)[:1]
    return Subquery(rows)


# The Run relation that reaches each keyed model, for order_runs' joins.
_RELATION_TO = {LatestMetric: "latest_metrics", RunSummary: "summaries", Param: "params", RunTag: "tags"}


def order_runs(runs, order_by: list[str]):
    """`runs` ordered by MLflow `order_by` clauses, as order_by_expressions orders them, but
    each keyed value reached by a LEFT JOIN on (run, key) instead of a subquery per row: over
    100,000 runs the database sorts one hash join (~3x faster on PostgreSQL) rather than
    probing an index once per run. (run, key) is unique, so the join never repeats a run."""
    if isinstance(order_by, str):
        order_by = [order_by]
    ordering = []
    for index, clause in enumerate(order_by or ()):
        column, descending = _parse_order_clause(clause)
        if column.entity == ATTRIBUTES:
            value = _sort_value(column)
        else:
            model, field_name = _KEYED_VALUES[column.entity]
            relation, alias = _RELATION_TO[model], f"order_by_{index}"
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
        column, descending = _parse_order_clause(clause)
        expressions.append(OrderBy(_sort_value(column), descending=descending, nulls_last=True))
    return [*expressions, F("start_time").desc(nulls_last=True), F("run_id").asc()]
