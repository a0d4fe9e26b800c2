"""Sorted runs a page at a time by keyset, not OFFSET: a page token carries the sort values of
the last run sent, and the next page is "the runs after those values", so page 10 costs what
page 1 costs, and runs arriving between two requests never shift a page (OFFSET would repeat or
skip runs).

The order is order_runs' (ordering.py): each `order_by` clause with missing values last in both
directions (a metric's NaNs, stored as NULL, just before them), then start_time DESC (NULL last)
and run_id, which is unique, so every run has exactly one place.

Two phases when the first clause is a metric, param, tag or summary: first the runs that have a
value, ordered by it through an inner join, then the runs that have none (for a metric, two: its
NaNs, then the runs without it). That is the same order (missing values sort last), but the
first phase has no NULLs, so PostgreSQL can walk the (key, value) index of the metric in order
and stop after a page instead of sorting every run of the experiment (bench/search.py,
bench/million.py measure it). A param's or tag's values tie in large groups, so their first
phase is read one group of equal values at a time (_tie_groups_page).
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, replace

from django.db.models import F, FilteredRelation, Q, QuerySet
from django.db.models.expressions import OrderBy
from django.utils.crypto import constant_time_compare, salted_hmac

from tracker.errors import InvalidParameterValue
from tracker.filtering.ast import ATTRIBUTES, NUMERIC_ATTRIBUTES, STRING_ATTRIBUTES
from tracker.filtering.compiler import KEYED_VALUES
from tracker.filtering.ordering import (
    RELATION_TO,
    bounded_order_by,
    nan_before_missing,
    never_logged,
    parse_order_clause,
    sort_values,
)
from tracker.models import INDEXED_VALUE_CHARS


@dataclass(frozen=True)
class _Key:
    name: str  # the annotation the page's rows carry, and the keyset predicate compares
    descending: bool
    nullable: bool
    # The index serving this key is declared NULLS LAST (run_search_order_idx): keep saying so
    # after the NULLs have been filtered out, or PostgreSQL cannot walk it for a DESC order.
    index_nulls_last: bool = False

    def order(self) -> OrderBy:
        # Without NULLs, no NULLS LAST: the index's own order (ASC, or DESC scanned backwards).
        nulls_last = True if self.nullable or self.index_nulls_last else None
        return OrderBy(F(self.name), descending=self.descending, nulls_last=nulls_last)

    def after(self, value) -> Q | None:
        """Rows whose value comes after `value` in this key's order (None: none can)."""
        if value is None:
            return None  # NULL is last: nothing comes after it
        beyond = Q(**{f"{self.name}__{'lt' if self.descending else 'gt'}": value})
        return beyond | Q(**{f"{self.name}__isnull": True}) if self.nullable else beyond

    def equal(self, value) -> Q:
        return Q(**{f"{self.name}__isnull": True}) if value is None else Q(**{self.name: value})


# The tie-breakers after the clauses: newest first, then the unique run id.
_START_TIME = _Key("sort_start_time", descending=True, nullable=True, index_nulls_last=True)
_RUN_ID = _Key("sort_run_id", descending=False, nullable=False)


@dataclass(frozen=True)
class _Phase:
    runs: QuerySet
    keys: tuple[_Key, ...]
    # The first two keys are a param's or tag's (prefix, value), and the phase has no NULLs:
    # its pages are read one tie group at a time (_tie_groups_page).
    groups: bool = False


def _phases(runs: QuerySet, order_by: list[str]) -> list[_Phase]:
    runs = runs.annotate(sort_start_time=F("start_time"), sort_run_id=F("run_id"))
    keys: list[_Key] = []
    split = None  # the keys of the first clause, when it is a keyed value
    split_alias, split_nan_first = "", False
    for index, clause in enumerate(order_by):
        column, descending = parse_order_clause(clause)
        if column.entity == ATTRIBUTES:
            field = STRING_ATTRIBUTES.get(column.key) or NUMERIC_ATTRIBUTES[column.key]
            runs = runs.annotate(**{f"sort_{index}": F(field)})
            keys.append(_Key(f"sort_{index}", descending, runs.model._meta.get_field(field).null))
            continue
        model, field_name = KEYED_VALUES[column.entity]
        relation, alias = RELATION_TO[model], f"order_by_{index}"
        runs = runs.alias(**{alias: FilteredRelation(relation, condition=Q(**{f"{relation}__key": column.key}))})
        clause_keys = []
        for part, value in enumerate(sort_values(model, F(f"{alias}__{field_name}"))):
            name = f"sort_{index}_{part}"
            runs = runs.annotate(**{name: value})
            clause_keys.append(_Key(name, descending, nullable=True))
        if index == 0:
            split, split_alias, split_nan_first = clause_keys, alias, nan_before_missing(column)
        elif nan_before_missing(column):
            runs = runs.annotate(**{f"sort_{index}_missing": never_logged(alias)})
            clause_keys.append(_Key(f"sort_{index}_missing", descending=False, nullable=False))
        keys += clause_keys
    if split is None:
        return [_Phase(runs, (*keys, _START_TIME, _RUN_ID))]
    present = tuple(replace(key, nullable=False) for key in split)
    tail = (*keys[len(split) :], _START_TIME, _RUN_ID)
    valued = _Phase(runs.filter(**{f"{split[-1].name}__isnull": False}), (*present, *tail), groups=len(split) == 2)
    if not split_nan_first:
        return [valued, _Phase(runs.filter(**{f"{split[-1].name}__isnull": True}), tail)]
    # A metric's NaNs (stored as NULL) before the runs that never logged it: a phase each. The
    # metric row's id is read through the annotation, as filtering on the relation itself would
    # join the metric table a second time.
    runs = runs.annotate(sort_0_row=F(f"{split_alias}__id"))
    nans = runs.filter(**{f"{split[-1].name}__isnull": True, "sort_0_row__isnull": False})
    return [valued, _Phase(nans, tail), _Phase(runs.filter(sort_0_row__isnull=True), tail)]


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


def _rows(runs: QuerySet, keys: tuple[_Key, ...], fields: tuple[str, ...], limit: int, *, order: tuple[_Key, ...]):
    """Up to `limit` rows with `fields` and every key's value, in the order of `order`."""
    names = [key.name for key in keys]
    ordering = (key.order() for key in order)
    return list(runs.order_by(*ordering).values_list(*fields, *names, named=True)[:limit])


def _rows_after(runs: QuerySet, order: tuple[_Key, ...], values: list | None, *, keys, fields, limit: int) -> list:
    """Up to `limit` rows of `runs` after `values` (None: from the start) in the order of
    `order`, each with `fields` and the values of `keys`.

    After a value of a nullable first key (start_time, as the tie-breaker), its values and its
    NULLs are read apart: "after this start time, or NULL" cannot bound an index walk, so every
    page walked from the newest run (page 326 of one param value took 194 ms at 101,000 runs,
    page 1 7 ms); "start_time <= this one" can."""
    first = order[0]
    if values is None or not first.nullable or values[0] is None:
        return _rows(runs if values is None else runs.filter(_after(order, values)), keys, fields, limit, order=order)
    present = (replace(first, nullable=False), *order[1:])
    valued = runs.filter(**{f"{first.name}__isnull": False}).filter(_after(present, values))
    rows = _rows(valued, keys, fields, limit, order=present)
    if len(rows) == limit:
        return rows
    nulls = runs.filter(**{f"{first.name}__isnull": True})
    return rows + _rows(nulls, keys, fields, limit - len(rows), order=order[1:])


# --- a param's or tag's tie groups ---------------------------------------------------------------
# A param often has a few values over a whole sweep (3 values over 100,000 runs in
# bench/search.py), so one value's runs are a third of the experiment. Sorting all of them to
# send a page took 70 ms at 101,000 runs. Instead a page is read one group of equal values at a
# time: the group's next runs in (start_time, run_id) order, which PostgreSQL reads by walking
# the runs' search-order index for a large group or by sorting a small one, and the next group's
# value, found by walking the (key, value-prefix) index a step.

# Past this many groups in one page the groups are small: the rest of the page is one query.
_GROUP_STEPS = 4


def _beyond_group(prefix: _Key, value: _Key, group: tuple[str, str]) -> Q:
    """Rows whose (prefix, value) comes after `group`'s. A prefix shorter than the indexed width
    is the whole value, so only a long one can have later values under the same prefix; saying
    so keeps the index walk from stepping through the group's own rows."""
    beyond = prefix.after(group[0])
    if len(group[0]) >= INDEXED_VALUE_CHARS:
        beyond |= prefix.equal(group[0]) & value.after(group[1])
    return beyond


def _in_group(prefix: _Key, value: _Key, group: tuple[str, str]) -> Q:
    # The prefix alone is exact for a short value; comparing both would make the planner
    # multiply two selectivities (see compiler._compile_keyed).
    same = prefix.equal(group[0])
    return same & value.equal(group[1]) if len(group[0]) >= INDEXED_VALUE_CHARS else same


def _next_group(phase: _Phase, after: tuple[str, str] | None) -> tuple[str, str] | None:
    prefix, value = phase.keys[:2]
    runs = phase.runs if after is None else phase.runs.filter(_beyond_group(prefix, value, after))
    first = runs.order_by(prefix.order()).values_list(prefix.name, flat=True)[:1]
    found = next(iter(first), None)
    if found is None or len(found) < INDEXED_VALUE_CHARS:
        return None if found is None else (found, found)
    longest = runs.filter(prefix.equal(found)).order_by(value.order()).values_list(value.name, flat=True)[:1]
    return found, next(iter(longest))


def _tie_groups_page(phase: _Phase, values: list | None, fields: tuple[str, ...], wanted: int) -> list:
    """Up to `wanted` rows of a groups phase after `values` (None: from its start)."""
    prefix, value, tail = phase.keys[0], phase.keys[1], phase.keys[2:]
    group = _next_group(phase, None) if values is None else (values[0], values[1])
    tail_values = None if values is None else values[2:]
    rows: list = []
    for _ in range(_GROUP_STEPS):
        if group is None:
            return rows
        members = phase.runs.filter(_in_group(prefix, value, group))  # one value: in the tail's order
        rows += _rows_after(members, tail, tail_values, keys=phase.keys, fields=fields, limit=wanted - len(rows))
        if len(rows) == wanted:
            return rows
        group, tail_values, last = _next_group(phase, group), None, group
    if group is None:
        return rows
    rest = phase.runs.filter(_beyond_group(prefix, value, last))
    return rows + _rows(rest, phase.keys, fields, wanted - len(rows), order=phase.keys)


def sorted_page(runs: QuerySet, order_by: list[str], *, token: str | None, size: int, fields: tuple[str, ...]):
    """One page of `runs` (rows with `fields` as attributes) in `order_by`'s order, and the token
    of the next page (None after the last). A token from another order is refused."""
    order_by = bounded_order_by(order_by)
    phases = _phases(runs, order_by)
    phase_index, values = _read_token(token, order_by)
    if values is not None and (phase_index >= len(phases) or len(values) != len(phases[phase_index].keys)):
        raise InvalidParameterValue(f"Invalid page token {token[:100]!r}: it was not issued by this server.")
    rows: list = []
    while phase_index < len(phases) and len(rows) <= size:
        phase = phases[phase_index]
        wanted = size + 1 - len(rows)
        if phase.groups:
            found = _tie_groups_page(phase, values, fields, wanted)
        else:
            found = _rows_after(phase.runs, phase.keys, values, keys=phase.keys, fields=fields, limit=wanted)
        names = [key.name for key in phase.keys]
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


def _seal(order_by: list[str], phase: int, values: list) -> str:
    """A keyed MAC of the token's contents: the sort values go into the next page's query, and a
    hand-edited one of another type (a string where a metric's number was) failed there as a 500."""
    contents = json.dumps([order_by, phase, values])
    return salted_hmac("tracker.filtering.paging", contents, algorithm="sha256").hexdigest()[:32]


def _make_token(order_by: list[str], phase: int, values: list) -> str:
    payload = {"order": _fingerprint(order_by), "phase": phase, "after": values, "seal": _seal(order_by, phase, values)}
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
    if not isinstance(phase, int) or isinstance(phase, bool) or phase not in (0, 1, 2) or not scalars:
        raise InvalidParameterValue(f"Invalid page token {token[:100]!r}: it was not issued by this server.")
    if not constant_time_compare(str(payload.get("seal")), _seal(order_by, phase, values)):
        raise InvalidParameterValue(f"Invalid page token {token[:100]!r}: it was not issued by this server.")
    return phase, values
