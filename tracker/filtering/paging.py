"""Sorted runs a page at a time by keyset, not OFFSET: a page token carries the sort values of
the last run sent, and the next page is "the runs after those values", so page 10 costs what
page 1 costs, and runs arriving between two requests never shift a page (OFFSET would repeat or
skip runs).

The order is order_runs' (ordering.py): each `order_by` clause with missing values (and NaN
metrics, stored as NULL) last in both directions, then start_time DESC (NULL last) and run_id,
which is unique, so every run has exactly one place.

Two phases when the first clause is a metric, param, tag or summary: first the runs that have a
value, ordered by it through an inner join, then the runs that have none. That is the same order
(missing values sort last), but the first phase has no NULLs, so PostgreSQL can walk the (key,
value) index of the metric in order and stop after a page instead of sorting every run of the
experiment (bench/search.py, bench/million.py measure it).
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from django.db.models import F, FilteredRelation, Q, QuerySet
from django.db.models.expressions import OrderBy

from tracker.errors import InvalidParameterValue
from tracker.filtering.ast import ATTRIBUTES, NUMERIC_ATTRIBUTES, STRING_ATTRIBUTES
from tracker.filtering.compiler import KEYED_VALUES
from tracker.filtering.ordering import RELATION_TO, parse_order_clause


@dataclass(frozen=True)
class _Key:
    name: str  # the annotation the page's rows carry, and the keyset predicate compares
    descending: bool
    nullable: bool

    def order(self) -> OrderBy:
        # Without NULLs, no NULLS LAST: the index's own order (ASC, or DESC scanned backwards).
        return OrderBy(F(self.name), descending=self.descending, nulls_last=True if self.nullable else None)

    def after(self, value) -> Q | None:
        """Rows whose value comes after `value` in this key's order (None: none can)."""
        if value is None:
            return None  # NULL is last: nothing comes after it
        beyond = Q(**{f"{self.name}__{'lt' if self.descending else 'gt'}": value})
        return beyond | Q(**{f"{self.name}__isnull": True}) if self.nullable else beyond

    def equal(self, value) -> Q:
        return Q(**{f"{self.name}__isnull": True}) if value is None else Q(**{self.name: value})


# The tie-breakers after the clauses: newest first, then the unique run id.
_START_TIME = _Key("sort_start_time", descending=True, nullable=True)
_RUN_ID = _Key("sort_run_id", descending=False, nullable=False)


@dataclass(frozen=True)
class _Phase:
    runs: QuerySet
    keys: tuple[_Key, ...]


def _phases(runs: QuerySet, order_by: list[str]) -> list[_Phase]:
    runs = runs.annotate(sort_start_time=F("start_time"), sort_run_id=F("run_id"))
    keys: list[_Key] = []
    split = None
    for index, clause in enumerate(order_by):
        column, descending = parse_order_clause(clause)
        name = f"sort_{index}"
        if column.entity == ATTRIBUTES:
            field = STRING_ATTRIBUTES.get(column.key) or NUMERIC_ATTRIBUTES[column.key]
            runs = runs.annotate(**{name: F(field)})
            nullable = runs.model._meta.get_field(field).null
        else:
            model, field_name = KEYED_VALUES[column.entity]
            relation, alias = RELATION_TO[model], f"order_by_{index}"
            runs = runs.alias(**{alias: FilteredRelation(relation, condition=Q(**{f"{relation}__key": column.key}))})
            runs = runs.annotate(**{name: F(f"{alias}__{field_name}")})
            nullable = True
            if index == 0:
                split = name
        keys.append(_Key(name, descending, nullable))
    tail = (*keys[1:], _START_TIME, _RUN_ID)
    if split is None:
        return [_Phase(runs, (*keys, _START_TIME, _RUN_ID))]
    first = _Key(split, keys[0].descending, nullable=False)
    return [
        _Phase(runs.filter(**{f"{split}__isnull": False}), (first, *tail)),
        _Phase(runs.filter(**{f"{split}__isnull": True}), tail),
    ]


def _after(keys: tuple[_Key, ...], values: list) -> Q:
    """Rows after `values` in the order of `keys`: the first key that differs decides."""
    result = Q(pk__in=[])  # nothing, when no key can move forward
    equal_so_far = Q()
    for key, value in zip(keys, values, strict=True):
        after = key.after(value)
        if after is not None:
            result |= equal_so_far & after
        equal_so_far &= key.equal(value)
    if keys and not keys[0].nullable and values[0] is not None:
        # Redundant, but an index condition: the walk starts at the last value, not the first.
        bound = Q(**{f"{keys[0].name}__{'lte' if keys[0].descending else 'gte'}": values[0]})
        result = bound & result
    return result


def sorted_page(runs: QuerySet, order_by: list[str], *, token: str | None, size: int, fields: tuple[str, ...]):
    """One page of `runs` (rows with `fields` as attributes) in `order_by`'s order, and the token
    of the next page (None after the last). A token from another order is refused."""
    order_by = [order_by] if isinstance(order_by, str) else list(order_by or ())
    phases = _phases(runs, order_by)
    phase_index, values = _read_token(token, order_by)
    if values is not None and (phase_index >= len(phases) or len(values) != len(phases[phase_index].keys)):
        raise InvalidParameterValue(f"Invalid page token {token[:100]!r}: it was not issued by this server.")
    rows: list = []
    while phase_index < len(phases) and len(rows) <= size:
        phase = phases[phase_index]
        names = [key.name for key in phase.keys]
        page = phase.runs if values is None else phase.runs.filter(_after(phase.keys, values))
        page = page.order_by(*(key.order() for key in phase.keys)).values_list(*fields, *names, named=True)
        wanted = size + 1 - len(rows)
        found = list(page[:wanted])
        rows += [(phase_index, row, names) for row in found]
        if len(found) == wanted:
            break
        phase_index, values = phase_index + 1, None
    if len(rows) <= size:
        return [row for _, row, _ in rows], None
    last_phase, last, names = rows[size - 1]
    return [row for _, row, _ in rows[:size]], _make_token(order_by, last_phase, [getattr(last, n) for n in names])


# --- tokens: opaque to clients (base64 of JSON) -----------------------------------------------


def _fingerprint(order_by: list[str]) -> str:
    return hashlib.sha256(json.dumps(order_by).encode()).hexdigest()[:16]


def _make_token(order_by: list[str], phase: int, values: list) -> str:
    payload = {"order": _fingerprint(order_by), "phase": phase, "after": values}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def _read_token(token: str | None, order_by: list[str]) -> tuple[int, list | None]:
    if not token:
        return 0, None
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        order, phase, values = payload["order"], payload["phase"], payload["after"]
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        raise InvalidParameterValue(f"Invalid page token {token[:100]!r}: it was not issued by this server.") from None
    if order != _fingerprint(order_by):
        raise InvalidParameterValue(
            f"Invalid page token {token[:100]!r}: it belongs to a search with another order_by; "
            "send the order_by of the search that gave it."
        )
    scalars = isinstance(values, list) and all(
        value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)) for value in values
    )
    if not isinstance(phase, int) or isinstance(phase, bool) or phase not in (0, 1) or not scalars:
        raise InvalidParameterValue(f"Invalid page token {token[:100]!r}: it was not issued by this server.")
    return phase, values
