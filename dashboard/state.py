"""A tree view's state, read from the query string: everything a viewer sees lives in the URL,
so a reload or a shared link gives the same view. Bad values fall back to defaults rather than
failing: a hand-edited URL should still open the page."""

import re
from dataclasses import dataclass

from django.http import QueryDict

from tracker.tree import ATTRIBUTE_SORTS, Column

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
DEFAULT_SORT = "-start"
# Bounds what one URL can ask the server to open or select (each id is 32 characters).
MAX_IDS = 200

_KEY = re.compile(r"^[/\w.\- :]+$")  # MLflow's key rule (tracker/ingest.py)
_RUN_ID = re.compile(r"^[0-9a-zA-Z_\-]{1,32}$")


def parse_columns(values: list[str]) -> tuple[Column, ...]:
    """`params.lr,metrics.loss` (or the parameter repeated) → columns, unknown kinds dropped."""
    columns: list[Column] = []
    for item in ",".join(values).split(","):
        kind, _, key = item.strip().partition(".")
        column = Column(kind, key)
        if kind in ("params", "metrics") and _KEY.match(key) and column not in columns:
            columns.append(column)
    return tuple(columns)


def parse_ids(value: str) -> tuple[str, ...]:
    ids = [item for item in value.split(",") if _RUN_ID.match(item)]
    return tuple(dict.fromkeys(ids))[:MAX_IDS]


def parse_int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(value), low), high)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class TreeState:
    filter: str
    sort: str  # an ATTRIBUTE_SORTS key or a column name, "-" first for descending
    columns: tuple[Column, ...]
    page: str
    per_page: int
    expanded: tuple[str, ...]
    collapsed: tuple[str, ...]
    selected: tuple[str, ...]
    show_deleted: bool

    @classmethod
    def from_query(cls, query: QueryDict) -> "TreeState":
        columns = parse_columns(query.getlist("columns"))
        sort = query.get("sort", DEFAULT_SORT)
        sort_key = sort.removeprefix("-")
        if sort_key not in ATTRIBUTE_SORTS and not parse_columns([sort_key]):
            sort = DEFAULT_SORT
        return cls(
            filter=query.get("filter", "").strip(),
            sort=sort,
            columns=columns,
            page=query.get("page", "1"),
            per_page=parse_int(query.get("per_page"), DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
            expanded=parse_ids(query.get("expanded", "")),
            collapsed=parse_ids(query.get("collapsed", "")),
            selected=parse_ids(query.get("selected", "")),
            show_deleted=query.get("show_deleted") in ("1", "true", "on"),
        )

    @property
    def sort_key(self) -> str:
        return self.sort.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def colspan(self) -> int:
        """Cells after the select box: name, status, start, duration and the chosen columns."""
        return 4 + len(self.columns)

    @property
    def column_param(self) -> str:
        return ",".join(column.name for column in self.columns)
