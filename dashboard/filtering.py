"""The dashboard's side of the filter language: compiling the filter box's text, ordering by a
column, and writing the clause a tag chip adds. The language itself is tracker/filtering/."""

import re
from dataclasses import dataclass

from django.db.models import Q

from tracker import filtering
from tracker.filtering.ast import Comparison
from tracker.selectors.tree import ATTRIBUTE_SORTS, COLUMN_KINDS, Order, TableColumn, sibling_order

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FilterProblem:
    """What the filter box shows under a filter that does not parse."""

    message: str
    position: int | None
    text: str

    @property
    def before(self) -> str:
        return self.text[: self.position] if self.position is not None else self.text

    @property
    def at(self) -> str:
        return self.text[self.position : self.position + 1] if self.position is not None else ""

    @property
    def after(self) -> str:
        return self.text[self.position + 1 :] if self.position is not None else ""


def compile_filter(text: str) -> tuple[Q | None, FilterProblem | None]:
    """(Q, None) for a good filter, (None, None) for none, (None, problem) for a bad one."""
    if not text:
        return None, None
    try:
        return filtering.compile_filter(text), None
    except filtering.FilterError as error:
        position = getattr(error, "position", None)
        message = getattr(error, "message", None) or str(error)
        return None, FilterProblem(message=message, position=position, text=text)


def named_columns(text: str) -> list[TableColumn]:
    """The param, metric and tag keys a filter names, in the order it names them: the tree shows
    their values beside the runs they matched. A filter that does not parse names none."""
    if not text:
        return []
    try:
        node = filtering.parse_filter(text)
    except filtering.FilterError:
        return []
    found: list[TableColumn] = []
    pending = [node]
    while pending:
        item = pending.pop(0)
        if isinstance(item, Comparison):
            column = TableColumn(item.column.entity, item.column.key)
            if column.kind in COLUMN_KINDS and column not in found:
                found.append(column)
        else:
            pending[:0] = item.children
    return found


def order_for(sort_key: str, descending: bool) -> Order:
    """Siblings' ORDER BY (tracker.selectors.tree.Order); param and metric columns sort as the filter
    language orders them."""
    if sort_key in ATTRIBUTE_SORTS:
        return lambda: sibling_order(sort_key, descending)
    kind, _, key = sort_key.partition(".")
    column = f"{kind}.{quote_key(key)}"
    return lambda: sibling_order(column, descending)


def quote_key(key: str) -> str:
    """A key as the filter language reads it: backquoted unless it is a plain identifier."""
    return key if _IDENTIFIER.match(key) else f"`{key}`"


def quote_value(value: str) -> str:
    """A string as the filter language reads it back exactly: quotes doubled, backslashes
    escaped (tracker/filtering/lexer.py). Any value, whatever quotes it holds."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def tag_clause(key: str, value: str) -> str:
    return f"tags.{quote_key(key)} = {quote_value(value)}"


def dataset_clause(name: str) -> str:
    """The filter for the runs that logged the dataset `name` as an input."""
    return f"datasets.name = {quote_value(name)}"


def without_tag(filter_text: str, key: str, value: str) -> str:
    """The filter text with a chip's clause taken out again, when it stands on its own."""
    clause = tag_clause(key, value)
    if filter_text == clause:
        return ""
    for joined in (f" AND {clause}", f"{clause} AND "):
        if joined in filter_text:
            return filter_text.replace(joined, "", 1)
    return filter_text


def with_tag(filter_text: str, key: str, value: str) -> str:
    """The filter text with `tags.key = 'value'` added (AND), as a tag chip does."""
    clause = tag_clause(key, value)
    if not filter_text:
        return clause
    if clause in filter_text:
        return filter_text
    # Parentheses keep an OR in the existing filter from swallowing the new clause.
    existing = f"({filter_text})" if " or " in filter_text.lower() else filter_text
    return f"{existing} AND {clause}"
