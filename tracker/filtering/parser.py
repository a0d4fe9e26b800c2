"""The filter language: MLflow's search_runs grammar plus `OR` and parentheses, compiled to `Q`.

    metrics.loss < 0.5 AND (params.optimizer = 'adam' OR tags.`team name` LIKE 'vision%')

One package serves the MLflow API, the native API and the dashboard's filter box:
`parse_filter` (here) turns text into a small AST, `compile_filter` (compiler.py) turns it into a `Q` on `Run`
(`Exists` subqueries over params, tags, latest metrics and summaries; never SQL built from
strings), and `order_by_expressions` (ordering.py) does the same for MLflow's `order_by` clauses.

Any input either parses or raises `FilterError`, which names the position and what was
expected there; it is an `InvalidParameterValue`, so every API answers it with HTTP 400.

Semantics (as MLflow's SQL store, where MLflow has a rule):
- `tags.k != 'v'` and `params.k != 'v'` match runs that *have* k with another value;
  `NOT IN` likewise. `IS NULL` is the way to ask for runs without k.
- A metric compares against its latest value. NaN is stored as NULL, so it never matches a
  comparison (not even `!=`); `metrics.k IS NULL` means the run never logged k.
- `summary.k` is the best value of k in the run's subtree (RunSummary.best_value);
  `summary.k IS NULL` means the run has no summary for k (not a parent, or not computed yet).
- `datasets.name`, `datasets.digest` and `datasets.context` (`dataset.` too) match a run when
  some dataset it logged as an input (`mlflow.log_input`) matches, as in MLflow: `!=` and
  `NOT IN` too ("some dataset not named 'train'"), and an input without a context never matches
  a comparison on `datasets.context`. `datasets.name IS NULL` means the run logged no dataset;
  `datasets.context IS NULL`, that none of its datasets has a context.
- For string attributes, which are never NULL, `IS NULL` means empty.
- LIKE: `%` any run of characters, `_` one character, a backslash makes the next one literal.
  LIKE is case-sensitive and ILIKE is not, on both databases (SQLite folds ASCII case only).
- Inside a quoted string, a doubled quote (`'it''s'`) or a backslash before the quote or
  before a backslash stands for that character; other backslashes are kept, so LIKE escapes
  such as `'50\\%'` pass through.
"""

from tracker.filtering.ast import (
    ANY_OPERATOR_TEXT,
    ATTRIBUTE_ALIASES,
    ATTRIBUTES,
    ATTRIBUTES_TEXT,
    COLUMN_TEXT,
    DATASET_FIELDS,
    DATASETS,
    ENTITIES_TEXT,
    ENTITY_ALIASES,
    MAX_COMPARISONS,
    MAX_NESTING,
    METRICS,
    NUMERIC_ATTRIBUTES,
    NUMERIC_OPERATORS,
    PARAMS,
    STRING_ATTRIBUTES,
    STRING_OPERATORS,
    SUMMARY,
    TAGS,
    And,
    Column,
    Comparison,
    FilterError,
    Node,
    Or,
)
from tracker.filtering.lexer import (
    END,
    IDENT,
    INT64,
    NAME,
    NUMBER,
    OPERATOR,
    PUNCT,
    STRING,
    WORD,
    Lexer,
    Token,
    check_text,
)

# --- the parser ------------------------------------------------------------------------------


class Parser:
    """Recursive descent. AND binds tighter than OR:

    filter     := or_expr END
    or_expr    := and_expr (OR and_expr)*
    and_expr   := primary (AND primary)*
    primary    := '(' or_expr ')' | comparison
    comparison := column operator value
    """

    def __init__(self, text: str, subject: str = "filter", noun: str = "filter"):
        self.tokens = Lexer(text, subject)
        self.subject = subject
        self.noun = noun
        self.nesting = 0
        self.comparisons = 0

    def error(self, token: Token, expected: str, problem: str = "") -> FilterError:
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
        column = self.column(f"{COLUMN_TEXT}, or '('")
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
            if token.kind == WORD and token.text.lower() in ENTITY_ALIASES:
                raise self.error(
                    token,
                    f"a key after '{token.text}.'",
                    problem=f"expected '.' and a key after '{token.text}', as in {token.text}.<key>",
                )
            return self.attribute(token, token.value, token.position)
        raise self.error(token, expected)

    def qualified_column(self, token: Token, entity_text: str, key: str, key_position: int) -> Column:
        entity = ENTITY_ALIASES.get(entity_text.lower())
        if entity is None:
            raise FilterError(
                position=token.position,
                expected=f"an entity type ({ENTITIES_TEXT})",
                found=f"'{entity_text}'",
                problem=f"Invalid entity type '{entity_text}'. Valid: {ENTITIES_TEXT}",
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
        if entity == DATASETS and key not in DATASET_FIELDS:
            raise FilterError(
                position=key_position,
                expected=f"a dataset field ({', '.join(DATASET_FIELDS)})",
                found=f"'{key}'",
                problem=f"Invalid dataset key '{key}'. Valid: {', '.join(DATASET_FIELDS)}",
                subject=self.subject,
            )
        return Column(entity, key, token.position)

    def attribute(self, token: Token, name: str, position: int) -> Column:
        name = ATTRIBUTE_ALIASES.get(name, name)
        if name not in STRING_ATTRIBUTES and name not in NUMERIC_ATTRIBUTES:
            raise FilterError(
                position=position,
                expected=f"an attribute ({ATTRIBUTES_TEXT})",
                found=f"'{name}'",
                problem=f"Invalid attribute key '{name}'. Valid: {ATTRIBUTES_TEXT} "
                f"(or use {', '.join(e + '.<key>' for e in (METRICS, PARAMS, TAGS, SUMMARY))})",
                subject=self.subject,
            )
        return Column(ATTRIBUTES, name, token.position)

    def operator(self) -> tuple[Token, str]:
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
        raise self.error(token, ANY_OPERATOR_TEXT)

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
        return tuple(token.value for token in self.quoted_list(f"a quoted string in the list of values for {column}"))

    def integer(self, expected: str, *, quoted_too: bool = False) -> int:
        """A 64-bit integer written in digits, as MLflow takes them (no fraction, exponent or plus
        sign; the lexer makes a float of a very long one); with `quoted_too`, also a quoted one,
        which MLflow reads with int() ('1' is 1)."""
        token = self.tokens.next()
        if quoted_too and token.kind == STRING:
            try:
                number = int(token.value)
            except ValueError:
                raise self.error(token, expected) from None
        elif token.kind == NUMBER and token.text.removeprefix("-").isdigit() and isinstance(token.value, int):
            number = token.value
        else:
            raise self.error(token, expected)
        if number not in INT64:  # no column holds it
            raise self.error(token, expected)
        return number

    def quoted_list(self, item: str) -> list[Token]:
        """The quoted strings of a list, `('a', 'b')`, as tokens (where each is, for a caller's
        own check of it); `item` says what each must be."""
        opening = self.tokens.next()
        if not (opening.kind == PUNCT and opening.value == "("):
            raise self.error(opening, "'(' to start the list of values, as in IN ('a', 'b')")
        tokens = []
        while True:
            token = self.tokens.next()
            if token.kind != STRING:
                raise self.error(token, item)
            tokens.append(token)
            separator = self.tokens.next()
            if separator.kind == PUNCT and separator.value == ")":
                return tokens
            if not (separator.kind == PUNCT and separator.value == ","):
                raise self.error(separator, f"',' or ')' to close the list opened at position {opening.position}")
            # A comma may end the list, as in Python: f"params.lr IN {tuple(values)}" writes
            # ('0.1',) for one value, and MLflow reads the list as a Python literal.
            closing = self.tokens.peek()
            if closing.kind == PUNCT and closing.value == ")":
                self.tokens.next()
                return tokens


def parse_filter(text: str) -> Node:
    """The AST of a filter. Empty or blank text is no filter: an empty `And` (every run)."""
    return Parser(check_text(text, "filter")).parse_filter()
