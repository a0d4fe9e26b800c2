"""A tree view's state, read from the query string: everything a viewer sees lives in the URL,
so a reload or a shared link gives the same view. Bad values fall back to defaults rather than
failing: a hand-edited URL should still open the page."""

from dataclasses import dataclass

from django.http import QueryDict

from tracker.constants import KEY_PATTERN, RUN_ID_PATTERN
from tracker.selectors.tree import ATTRIBUTE_SORTS, COLUMN_KINDS, TableColumn

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
DEFAULT_SORT = "-start"
# Bounds what one URL can ask the server to open or select (each id is 32 characters).
MAX_IDS = 200


# Each column is read for every row shown: 3,800 columns in one URL held a thread for 18 s.
MAX_COLUMNS = 100


def parse_columns(values: list[str]) -> tuple[TableColumn, ...]:
    """`params.lr,metrics.loss,tags.model` (or the parameter repeated) → columns, unknown kinds
    dropped, the first MAX_COLUMNS kept."""
    columns: dict[TableColumn, None] = {}
    for item in ",".join(values).split(","):
        kind, _, key = item.strip().partition(".")
        if kind in COLUMN_KINDS and KEY_PATTERN.match(key):
            columns[TableColumn(kind, key)] = None
            if len(columns) == MAX_COLUMNS:
                break
    return tuple(columns)


def is_sortable(sort_key: str) -> bool:
    """An attribute, a param, metric or tag column, or `summary.<key>` (the best-child column)."""
    kind, _, key = sort_key.partition(".")
    return (
        sort_key in ATTRIBUTE_SORTS
        or bool(parse_columns([sort_key]))
        or (kind == "summary" and bool(KEY_PATTERN.match(key)))
    )


def first_sort(key: str, goal: str | None = None) -> str:
    """The sort a first click on a column header asks for: best first. Names and statuses read
    A→Z; times and metrics newest or highest first, a metric whose goal is "min" lowest first."""
    ascending_first = key in ("name", "status") or goal == "min"
    return key if ascending_first else f"-{key}"


def parse_ids(value: str) -> tuple[str, ...]:
    ids = [item for item in value.split(",") if RUN_ID_PATTERN.fullmatch(item)]
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
    columns: tuple[TableColumn, ...]
    page: str
    per_page: int
    expanded: tuple[str, ...]
    collapsed: tuple[str, ...]
    selected: tuple[str, ...]
    show_deleted: bool
    best: str = ""  # the metric of the best-child column; the view fills in the default
    # Whether the URL names the columns (`columns=`, even empty); if not, the view shows defaults.
    columns_chosen: bool = False

    @classmethod
    def from_query(cls, query: QueryDict) -> "TreeState":
        columns = parse_columns(query.getlist("columns"))
        sort = query.get("sort", DEFAULT_SORT)
        if not is_sortable(sort.removeprefix("-")):
            sort = DEFAULT_SORT
        best = query.get("best", "").strip()
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
            best=best if KEY_PATTERN.match(best) else "",
            columns_chosen="columns" in query,
        )

    @property
    def sort_key(self) -> str:
        return self.sort.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def colspan(self) -> int:
        """Cells after the select box: name, status, start, duration, the chosen columns and the
        best-child column (when there is a metric to show)."""
        return 4 + len(self.columns) + (1 if self.best else 0)

    @property
    def best_column(self) -> str:
        """The best-child column's sort key: the filter language's `summary.<metric>`."""
        return f"summary.{self.best}"

    @property
    def column_param(self) -> str:
        return ",".join(column.name for column in self.columns)
