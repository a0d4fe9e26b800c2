"""How the filter languages' operators become SQL: the three custom lookups (LIKE and ILIKE
with the user's own pattern, a `<>` that never matches NULL) and `condition`, the one
operator -> `Q` mapping that the run filter and the experiment filter share."""

from django.db.models import F, Lookup, Q


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


def condition(field_name: str, operator: str, value) -> Q:
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
