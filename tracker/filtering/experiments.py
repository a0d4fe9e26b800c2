"""MLflow's search_experiments filter and order_by, compiled to `Q` and ORDER BY expressions.

The grammar is MLflow's (mlflow.utils.search_utils.SearchExperimentsUtils), a small cousin of
the run filter language (tracker/filtering/), whose tokens, quoting, operator reading and
LIKE semantics it shares:

    name LIKE 'sweep%' AND tags.team IS NOT NULL AND experiment_id IN ('1', '2')

- `name` (or `attribute.name`): =, !=, LIKE, ILIKE against a quoted string;
- `experiment_id`: =, != against a quoted id, IN, NOT IN against a list of them;
- `creation_time`, `last_update_time`: =, !=, <, <=, >, >= against an integer;
- `tags.<key>`: =, !=, LIKE, ILIKE against a quoted string, and IS NULL, IS NOT NULL.
  As for runs, `!=` matches experiments that have the tag with another value.
A key or an attribute's name may be backquoted or double-quoted (tags."team name", "name"), and
so may an order_by column. Comparisons are joined by AND, at most MAX_COMPARISONS of them (the
run filter's limit).

Every tag comparison together is one subquery, however many there are: the tag rows that satisfy
their key's conditions, grouped by experiment, and an experiment matches when all the keys
named are among them ((experiment, key) is unique, so a key's conditions all apply to its one
row). An EXISTS per comparison made PostgreSQL's planner explode: 100 comparisons took 4 s to
plan, 300 ran past a minute on four backends at once. For the same reason every `IS NULL` key
together is one NOT EXISTS.
"""

from django.db.models import Count, Exists, F, OuterRef, Q

from tracker.filtering.ast import MAX_COMPARISONS
from tracker.filtering.lexer import END, IDENT, INT64, NAME, OPERATOR, STRING, WORD, Token, check_text
from tracker.filtering.lookups import condition
from tracker.filtering.ordering import bounded_order_by
from tracker.filtering.parser import Parser
from tracker.models import ExperimentTag

# The operators MLflow's store takes for each column.
_NAME_OPERATORS = ("=", "!=", "LIKE", "ILIKE")
_ID_OPERATORS = ("=", "!=", "IN", "NOT IN")
_TIME_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
_TAG_OPERATORS = ("=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL")
# Attribute name → (Experiment field, its operators).
_ATTRIBUTES = {
    "name": ("name", _NAME_OPERATORS),
    "experiment_id": ("id", _ID_OPERATORS),
    "creation_time": ("creation_time", _TIME_OPERATORS),
    "last_update_time": ("last_update_time", _TIME_OPERATORS),
}
_ENTITIES = {"tags": "tag", "tag": "tag", "attribute": "attribute", "attributes": "attribute", "attr": "attribute"}
_COLUMN_TEXT = "name, experiment_id, creation_time, last_update_time or tags.<key>"
_ORDER_COLUMN_TEXT = "name, experiment_id, creation_time or last_update_time"
_SUBJECT = "experiment filter"
_QUOTED_ID = "an experiment ID in quotes, such as '5'"


def _column(parser: Parser, expected: str) -> tuple[str, str, Token]:
    """("tag", key, token) or ("attribute", name, token) for the next column."""
    token = parser.tokens.next()
    if token.kind == IDENT:
        entity_text, key, _ = token.value
        entity = _ENTITIES.get(entity_text.lower())
        # MLflow quotes keys, never the entity: `tags`.team is refused there.
        if entity is None or not key or token.text.startswith("`"):
            raise parser.error(token, expected)
    elif token.kind in (WORD, NAME) or (token.kind == STRING and token.text.startswith('"')):
        # Double quotes make an identifier in SQL, so MLflow reads "name" as the column.
        entity, key = "attribute", token.value
    else:
        raise parser.error(token, expected)
    if entity == "attribute" and key not in _ATTRIBUTES:
        raise parser.error(token, expected)
    return entity, key, token


def _operator(parser: Parser, column: Token, allowed: tuple[str, ...]) -> str:
    token = parser.tokens.peek()
    expected = f"an operator for {column.text} ({', '.join(allowed)})"
    if token.is_keyword("IS") and "IS NULL" not in allowed:
        raise parser.error(
            token,
            expected,
            problem=f"{column.text} is an attribute, which every experiment has: "
            f"IS NULL and IS NOT NULL apply to tags only; expected {expected}",
        )
    # Only what starts one of this column's operators is read on, by the run filter's rule.
    if token.kind not in (OPERATOR, WORD) or token.text.upper() not in {op.split()[0] for op in allowed}:
        raise parser.error(token, expected)
    return parser.operator()[1]


def _string(parser: Parser) -> str:
    token = parser.tokens.next()
    if token.kind != STRING:
        raise parser.error(token, "a quoted string")
    return token.value


def _experiment_id(parser: Parser, token: Token) -> int:
    if token.kind != STRING:
        raise parser.error(token, _QUOTED_ID)
    try:
        # MLflow reads the id with int(), so ' 5', '+5' and '05' all name experiment 5.
        experiment_id = int(token.value)
    except ValueError:
        raise parser.error(token, "an experiment ID (an integer)") from None
    if experiment_id not in INT64:
        raise parser.error(token, "an experiment ID (an integer)")
    return experiment_id


def _comparison(parser: Parser) -> tuple[str | None, Q | None]:
    """(None, the condition) for an attribute; for a tag, (key, the condition its row meets),
    the condition None when the experiment must have no such tag (IS NULL)."""
    entity, key, column = _column(parser, _COLUMN_TEXT)
    if entity == "tag":
        operator = _operator(parser, column, _TAG_OPERATORS)
        if operator == "IS NULL":
            return key, None
        if operator == "IS NOT NULL":
            return key, Q()
        return key, condition("value", operator, _string(parser))
    field_name, operators = _ATTRIBUTES[key]
    operator = _operator(parser, column, operators)
    if operators is _ID_OPERATORS:
        if operator in ("IN", "NOT IN"):  # ('1', '2'), and ('1',) as f"experiment_id IN {tuple(ids)}" writes one id
            value = [_experiment_id(parser, token) for token in parser.quoted_list(_QUOTED_ID)]
        else:
            value = _experiment_id(parser, parser.tokens.next())
    elif operators is _TIME_OPERATORS:
        value = parser.integer("an integer")
    else:
        value = _string(parser)
    return None, condition(field_name, operator, value)


def experiment_filter(text: str | None) -> Q:
    """A Q on Experiment for an MLflow experiment filter; empty text matches every experiment."""
    text = check_text(text, _SUBJECT)
    if not text.strip():
        return Q()
    parser = Parser(text, subject=_SUBJECT)
    comparisons = []
    while True:
        if len(comparisons) == MAX_COMPARISONS:
            raise parser.error(
                parser.tokens.peek(),
                f"at most {MAX_COMPARISONS} comparisons",
                problem=f"a filter may hold at most {MAX_COMPARISONS} comparisons",
            )
        comparisons.append(_comparison(parser))
        token = parser.tokens.next()
        if token.kind == END:
            return _combined(comparisons)
        if not token.is_keyword("AND"):
            raise parser.error(token, "AND or the end of the filter")


def _combined(comparisons: list[tuple[str | None, Q | None]]) -> Q:
    """The attribute conditions ANDed, all the tag conditions as one grouped subquery, and all
    the keys an experiment must lack as one NOT EXISTS."""
    result = Q()
    by_key: dict[str, Q] = {}
    absent_keys = []
    for key, condition_on in comparisons:
        if key is None:
            result &= condition_on
        elif condition_on is None:
            absent_keys.append(key)
        else:
            by_key[key] = by_key.get(key, Q()) & condition_on
    if by_key:
        matching = Q()
        for key, condition_on in by_key.items():
            matching |= Q(key=key) & condition_on
        having_every_key = (
            ExperimentTag.objects.filter(matching)
            .order_by()
            .values("experiment")
            .annotate(keys=Count("key"))
            .filter(keys=len(by_key))
            .values("experiment")
        )
        result &= Q(pk__in=having_every_key)
    if absent_keys:
        result &= ~Q(Exists(ExperimentTag.objects.filter(experiment=OuterRef("pk"), key__in=absent_keys)))
    return result


def _order_clause(clause: str) -> tuple[str, bool]:
    """`column [ASC|DESC]` → (attribute name, descending)."""
    subject = f"order_by clause {clause[:60]!r}"
    parser = Parser(check_text(clause, subject), subject=subject, noun="clause")
    entity, name, token = _column(parser, _ORDER_COLUMN_TEXT)
    if entity == "tag":
        raise parser.error(
            token, _ORDER_COLUMN_TEXT, problem=f"experiments sort by an attribute ({_ORDER_COLUMN_TEXT}), not by a tag"
        )
    descending = False
    if parser.tokens.peek().is_keyword("ASC", "DESC"):
        descending = parser.tokens.next().text.upper() == "DESC"
    parser.expect_end("ASC, DESC or the end of the clause")
    return name, descending


def experiment_ordering(order_by: list[str]) -> list:
    """ORDER BY expressions for MLflow order_by clauses ("name", "creation_time DESC",
    "attribute.last_update_time ASC", "`experiment_id`"); the default is newest first, then
    experiment_id ASC, as MLflow. Ties of a given order fall to experiment_id DESC, as in MLflow's
    store, so pages are stable and come in its order."""
    expressions, names = [], set()
    for clause in bounded_order_by(order_by):
        name, descending = _order_clause(clause)
        field = F(_ATTRIBUTES[name][0])
        expressions.append(field.desc() if descending else field.asc())
        names.add(name)
    if not expressions:
        return [F("creation_time").desc(), F("id").asc()]
    return expressions if "experiment_id" in names else [*expressions, F("id").desc()]
