"""Formatting for the run pages: times in epoch ms, durations, metric values, sort links."""

import html
import math
from datetime import UTC, datetime

from django import template
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

from dashboard import filtering, names
from dashboard.state import first_sort
from tracker.constants import NOTE_TAG, SYSTEM_METRIC_PREFIX
from tracker.ranges import is_epoch_ms

register = template.Library()

# The longest filter a tag chip links to; its URL-encoded form stays well inside what servers
# and proxies take in a request line (8 KB is common).
CHIP_FILTER_MAX_CHARS = 2000

# A run's description as Markdown: CommonMark and GitHub's tables (MLflow's UI draws them), with
# raw HTML off (markdown-it then escapes any tag as text) and images off (no request to another
# site on opening a page); its link check refuses javascript:, vbscript:, file: and data: URLs.
# Nothing a client wrote runs here.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).disable("image").enable("table")


@register.filter
def cut_middle(label, differs_at: int | None = None) -> str:
    """`label` as the parts a `.cut-middle` box draws (static/css/runtree.css): a head gives way to
    an ellipsis when the box is too narrow, a tail does not (dashboard/names.py `cut_parts`) unless
    it is wider than the box, and then it keeps the half where the names differ (`keep-start`). The
    box needs an aria-label of the whole name: screen readers read its parts as separate words."""
    label = str(label)
    parts = names.cut_parts(label, differs_at)
    classes = ["head", "tail"] * (len(parts) // 2)  # cut_parts gives heads and tails in turn
    if names.tail_differs_early(label, parts[-1], differs_at):
        classes[-1] += " keep-start"
    # html.escape is what Django's escape() calls, without its lazy-string wrapper: half the time
    # on a tree page's 300 rows (0.44 ms against 0.89).
    return mark_safe(
        "".join(f'<span class="{css}">{html.escape(part)}</span>' for css, part in zip(classes, parts, strict=True))
    )


def cut_middle_together(labels: list[str]) -> list[str]:
    """Each of `labels`, shown together (a list, a table, a parent's children), cut as
    `cut_middle` does, each tail reaching back to where its label differs from the others."""
    starts = names.differing_starts(labels)
    return [cut_middle(label, differs_at) for label, differs_at in zip(labels, starts, strict=True)]


@register.filter
def epoch_ms(value):
    """Epoch milliseconds → an aware datetime, for the `date` filter; None for a time that is no
    date (the `date` filter then shows nothing: use `when` where the number should show)."""
    if value is None or not is_epoch_ms(value):
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


class When:
    """One instant in the forms a page shows: `moment` (a datetime, for naturaltime), ISO for
    <time>, full for the tooltip, short. A stored time that is no date (nanoseconds sent as
    milliseconds, 2^63-1, year 10000: the API refuses them now, an import may still bring
    them) has no moment and no ISO, and shows as its number."""

    def __init__(self, ms: int):
        if not is_epoch_ms(ms):
            self.moment = self.iso = None
            self.full = self.short = str(ms)
            return
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
        self.moment = moment
        self.iso = moment.isoformat(timespec="seconds")
        self.full = moment.strftime("%Y-%m-%d %H:%M:%S")
        self.short = f"{moment:%b} {moment.day}, {moment:%H:%M}"


@register.filter
def when(ms):
    """Epoch ms → When; cheaper than three `date` filters on every row of a long tree."""
    return None if ms is None else When(ms)


@register.filter
def duration(ms):
    """A run's length as people read it: 850 ms, 4.2 s, 3m 05s, 2h 07m, 3d 4h."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


@register.filter
def system_metric_name(key: str) -> str:
    """A system metric's name under its group's heading, where the prefix would only crowd out
    what differs: `system/cpu_utilization_percentage` → `cpu_utilization_percentage`."""
    return key.removeprefix(SYSTEM_METRIC_PREFIX)


@register.filter
def number(value):
    """A value for a numeric column: whole numbers as they are, others to four decimals so the
    decimal points line up, very large or small ones in scientific notation; NaN and
    infinities by name. The cell's title carries the full value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1e9 or abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:,.4f}"


@register.filter
def params_text(params):
    """A best run's params for a tooltip: `lr=0.1, depth=3`, in key order."""
    return ", ".join(f"{key}={params[key]}" for key in sorted(params or {}))


@register.filter
def is_number(value):
    return isinstance(value, int | float) and not isinstance(value, bool)


@register.filter
def status_class(status):
    return f"status-{(status or '').lower()}"


@register.simple_tag
def next_sort(state, key, goals=None):
    """The sort a column header links to: this column descending first, then ascending (names
    and statuses read best A→Z first; a metric whose goal is "min", in `goals` by column name,
    best first too: its lowest value)."""
    if state.sort_key != key:
        return first_sort(key, (goals or {}).get(key))
    return key if state.descending else f"-{key}"


@register.simple_tag
def sort_indicator(state, key):
    if state.sort_key != key:
        return ""
    return "▼" if state.descending else "▲"


@register.simple_tag
def aria_sort(state, key):
    if state.sort_key != key:
        return "none"
    return "descending" if state.descending else "ascending"


@register.filter
def dataset_filter(name: str) -> str:
    """The filter text for the runs that logged dataset `name` (the run page links it)."""
    return filtering.dataset_clause(name)


@register.simple_tag
def chip(filter_text, key, value):
    """A tag chip: whether its clause is in the filter, and the filter its link sets (the clause
    added, or taken out again when it is already there)."""
    active = filtering.tag_clause(key, value) in filter_text
    toggled = filtering.without_tag(filter_text, key, value) if active else filtering.with_tag(filter_text, key, value)
    # A 100 KB tag value made a link the server refused (414 URI Too Long): such a chip shows
    # its value but links nowhere (it can still be typed into the filter box).
    linkable = len(toggled or "") <= CHIP_FILTER_MAX_CHARS
    return {"active": active, "filter": toggled or None, "linkable": linkable}


@register.simple_tag
def column_toggle(state, column):
    """The `columns` value after adding or removing `column`."""
    names = [c.name for c in state.columns]
    names = [n for n in names if n != column.name] if column.name in names else [*names, column.name]
    return ",".join(names)


@register.simple_tag
def compare_href(selected):
    return "/compare/?runs=" + ",".join(selected)


@register.filter
def note_of(tags) -> str:
    """The description among an experiment's `tags` (mlflow.note.content, what MLflow's UI writes),
    "" if none: a page shows it as a description, not as a tag chip."""
    return next((tag.value for tag in tags if tag.key == NOTE_TAG), "")


@register.filter
def without_note(tags) -> list:
    return [tag for tag in tags if tag.key != NOTE_TAG]


@register.filter
def first_line(text: str) -> str:
    """A description's first non-blank line, for a list's one-line glimpse of it."""
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


@register.filter
def markdown_inline(text):
    """One line of a description (Markdown) as inline HTML (bold, code, links), safely: see _MARKDOWN."""
    return mark_safe(_MARKDOWN.renderInline(text or ""))  # noqa: S308 - markdown-it escapes raw HTML (html=False)


@register.filter
def markdown(text):
    """A description (Markdown) as HTML, safely: see _MARKDOWN."""
    return mark_safe(_MARKDOWN.render(text or ""))  # noqa: S308 - markdown-it escapes raw HTML (html=False)
