"""Plotly figure dicts, built as pure functions from tracking data and tested without a browser.
The page hands each dict to plotly.js through json_script."""

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter

import numpy as np
from django.http import QueryDict

from dashboard.downsample import RUN_PAGE_BUDGET, Thinned, keep_extremes
from dashboard.names import short_name
from tracker.selectors.histories import Series
from tracker.series import series_key
from tracker.values import finite_or_none

ACCENT = "#2563eb"
GRID = "#e5e7eb"
TEXT = "#374151"
MUTED = "#6b7280"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

# The x axis of a history: the step, seconds since the run started, or the wall clock.
X_MODES = {"step": "step", "relative": "time since start (s)", "wall": "time"}
# Where NaN and ±inf steps are marked: on an invisible second axis (0 = bottom edge, 1 = top).
MARK_AXIS = "y2"
MARK_STYLE = {
    "NaN": {"y": 0.0, "symbol": "x-thin-open", "color": "#dc2626"},
    "+inf": {"y": 1.0, "symbol": "triangle-up", "color": "#dc2626"},
    "-inf": {"y": 0.0, "symbol": "triangle-down", "color": "#dc2626"},
}


@dataclass(frozen=True)
class HistoryOptions:
    """A history chart's choices, read from the URL (bad values fall back to the defaults)."""

    x: str = "step"
    smoothing: float = 0.0  # EMA weight, 0 (raw) … 0.99
    log_x: bool = False
    log_y: bool = False

    @classmethod
    def from_query(cls, query: QueryDict) -> "HistoryOptions":
        try:
            smoothing = min(max(float(query.get("smooth", 0)), 0.0), 0.99)
        except ValueError:
            smoothing = 0.0
        if not math.isfinite(smoothing):
            smoothing = 0.0
        x = query.get("xaxis", "step")
        return cls(
            x=x if x in X_MODES else "step",
            smoothing=smoothing,
            log_x=query.get("logx") == "1",
            log_y=query.get("logy") == "1",
        )

    @property
    def query(self) -> dict[str, str]:
        """The non-default choices as query parameters (for the zoom's fetch)."""
        found = {}
        if self.x != "step":
            found["xaxis"] = self.x
        if self.smoothing:
            found["smooth"] = f"{self.smoothing:g}"
        if self.log_x:
            found["logx"] = "1"
        if self.log_y:
            found["logy"] = "1"
        return found


@dataclass(frozen=True)
class ZoomRange:
    """A zoomed history chart's x range, in what the points are filtered on: steps, epoch ms
    (wall time), or ms since each run's start (relative time: "elapsed", per run). The chart
    sends plotly's range as it has it (static/js/run.js); this is the one place that reads it,
    for the run page and the compare page alike. An edge absent or unreadable is open."""

    low: int | None = None
    high: int | None = None
    by: str = "step"  # a column of tracker.selectors.histories.RANGE_COLUMNS

    @classmethod
    def from_query(cls, query: QueryDict, options: HistoryOptions) -> "ZoomRange":
        by = {"step": "step", "wall": "timestamp", "relative": "elapsed"}[options.x]
        low, high = (_axis_value(query.get(edge), options.x) for edge in ("from", "to"))
        # Widened to whole units outward: the points just past a zoomed edge are drawn too,
        # so the line runs to the chart's edge.
        return cls(None if low is None else math.floor(low), None if high is None else math.ceil(high), by)


def _axis_value(text: str | None, x: str) -> float | None:
    """An x-axis value as plotly gives it → the stored unit: a step; on a date axis a date
    string ("2023-11-14 22:13:20.9", UTC as drawn from epoch ms) or epoch ms; in relative time
    seconds → ms."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        if x != "wall":
            return None
        try:
            value = datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000
        except ValueError:
            return None
    if not math.isfinite(value):
        return None
    return value * 1000 if x == "relative" else value


# Prefixes that name a split of the data: `train_loss` and `val_loss` are one quantity, `loss`.
SPLIT_PREFIXES = ("train", "training", "val", "valid", "validation", "test", "eval", "dev")
_STEM = re.compile(r"^(?P<split>" + "|".join(SPLIT_PREFIXES) + r")(?P<sep>[_/.\-])(?P<stem>.+)$", re.IGNORECASE)


def metric_stem(key: str) -> str:
    """What a metric measures without its split: `train_loss` → `loss`, `val/acc` → `acc`,
    `accuracy · val` (one dataset's series of a key) → `accuracy`; a key without a split prefix
    is its own stem."""
    key = series_key(key)
    match = _STEM.match(key)
    return match["stem"] if match else key


def group_by_stem(keys: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Keys sharing a stem, drawn on one chart: (stem, keys in order), stems in order. A stem
    shared by one key only is that key's own chart, titled by the full key."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        groups.setdefault(metric_stem(key), []).append(key)
    return sorted(((stem if len(members) > 1 else members[0], members) for stem, members in groups.items()))


# A legend in a row under the x axis's title: hung from its top, so when it wraps into several
# rows on a phone it grows downward instead of up over the title (plotly anchors a legend this
# low by its bottom otherwise).
LEGEND_BELOW = {"orientation": "h", "y": -0.22, "yanchor": "top"}
# One colour per line of a run-page chart (the splits of one stem).
LINE_COLORS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#be123c"]


def points_note(thinned: Iterable[Thinned]) -> str:
    """`2,000 of 5,000 points` when any line was thinned, else `5,000 points`."""
    thinned = list(thinned)
    shown, total = sum(line.shown for line in thinned), sum(line.drawable for line in thinned)
    return f"{shown:,} of {total:,} points" if shown < total else f"{total:,} points"


def _x_values(line_steps: list[int], line_times: list[int], options: HistoryOptions, origin: int):
    if options.x == "step":
        return line_steps
    if options.x == "wall":
        return line_times  # a date axis reads epoch milliseconds
    return [(timestamp - origin) / 1000 for timestamp in line_times]


def run_history_figure(
    title: str,
    lines: list[tuple[str, Thinned]],
    *,
    options: HistoryOptions = HistoryOptions(),
    origin: int = 0,
) -> dict:
    """One chart of a run page: each (key, thinned history) a line (the smoothed line over a
    faint raw one when smoothing is on), NaN and ±inf steps as marks at the chart's edge, and
    how many of the logged points were sent in the title. Relative time counts from `origin`
    (epoch ms, tracker.selectors.histories.time_origins)."""
    traces = []
    marks_x, marks_y, marks_text, marks_symbol = [], [], [], []
    few = all(len(line.values) <= 50 for _, line in lines)
    for position, (key, line) in enumerate(lines):
        color = LINE_COLORS[position % len(LINE_COLORS)]
        name = _escape_template(key)
        x = _x_values(line.steps, line.timestamps, options, origin)
        raw = {
            "type": "scatter",
            "mode": "lines+markers" if few else "lines",
            "x": x,
            "y": line.values,
            "name": name,
            "legendgroup": name,
            "line": {"color": color, "width": 2},
            "marker": {"size": 5},
            "customdata": line.steps,
            "hovertemplate": f"step %{{customdata}}<br>{name} %{{y:.4g}}<extra></extra>",
        }
        traces.append(raw)
        if line.smoothed is not None:
            raw.update(opacity=0.25, showlegend=False, hoverinfo="skip")
            raw.pop("hovertemplate")
            traces.append(
                {
                    **raw,
                    "y": line.smoothed,
                    "opacity": 1,
                    "showlegend": True,
                    "hoverinfo": None,
                    "hovertemplate": f"step %{{customdata}}<br>{name} (smoothed) %{{y:.4g}}<extra></extra>",
                }
            )
            traces[-1].pop("hoverinfo")
        mark_x = _x_values([m.step for m in line.marks], [m.timestamp for m in line.marks], options, origin)
        for mark, at in zip(line.marks, mark_x, strict=True):
            style = MARK_STYLE[mark.kind]
            marks_x.append(at)
            marks_y.append(style["y"])
            marks_symbol.append(style["symbol"])
            marks_text.append(f"{name}: {mark.kind} at step {mark.step}")
    if marks_x:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "NaN / ±inf",
                "x": marks_x,
                "y": marks_y,
                "yaxis": MARK_AXIS,
                "text": marks_text,
                "marker": {"color": MARK_STYLE["NaN"]["color"], "symbol": marks_symbol, "size": 9},
                "hovertemplate": "%{text}<extra></extra>",
                "cliponaxis": False,
            }
        )
    x_axis = {"title": {"text": X_MODES[options.x]}, "gridcolor": GRID, "zeroline": False}
    if options.x == "wall":
        x_axis["type"] = "date"
    elif options.log_x:
        x_axis["type"] = "log"
    y_title = _axis_title(" / ".join(key for key, _ in lines))
    y_axis = {"title": {"text": y_title}, "gridcolor": GRID, "zeroline": False, "automargin": True}
    if options.log_y:
        y_axis["type"] = "log"
    note = points_note(line for _, line in lines)
    nonfinite = sum(line.nonfinite for _, line in lines)
    if nonfinite:
        note += f", {nonfinite:,} NaN/inf marked"
    return {
        "data": traces,
        "layout": {
            "title": {
                "text": f"{_escape_template(title)} <span style='font-size:11px;color:{MUTED}'>{note}</span>",
                "x": 0,
                "xanchor": "left",
                "font": {"size": 14},
            },
            "font": {"family": FONT, "size": 12, "color": TEXT},
            "margin": {"l": 64, "r": 24, "t": 40, "b": 44},
            "height": 360,
            "xaxis": x_axis,
            "yaxis": y_axis,
            # The marks' axis: invisible, fixed 0–1, so they sit at the edges whatever the data.
            "yaxis2": {"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
            "plot_bgcolor": "white",
            "paper_bgcolor": "white",
            "showlegend": len(traces) > 1,
            "legend": LEGEND_BELOW,
            "meta": {
                # What a zoom fetches again (run.js).
                "keys": [key for key, _ in lines],
                "shown": sum(line.shown for _, line in lines),
                "total": sum(line.total for _, line in lines),
            },
        },
    }


def add_points_note(figure: dict, thinned: Iterable[Thinned]) -> dict:
    """Append "2,000 of 5,000 points" (and the NaN/inf count, and that a zoom shows every point
    when some were thinned) to a figure's title."""
    thinned = list(thinned)
    note = points_note(thinned)
    nonfinite = sum(line.nonfinite for line in thinned)
    if nonfinite:
        note += f", {nonfinite:,} NaN/inf shown as gaps"
    if any(line.shown < line.drawable for line in thinned):
        note += " · zoom in for every point"
    # On a line of its own under the title (as a band chart's note): beside it, it ran off a phone.
    figure["layout"]["title"]["text"] += f"<br><span style='font-size:11px;color:{MUTED}'>{note}</span>"
    figure["layout"]["margin"] = {**figure["layout"].get("margin", {}), "t": 64}
    return figure


# A y axis's title runs along the chart's height (~260 px): a longer one ran past both ends and
# over the chart's title. Its middle gives way; the chart's title and the hover carry it whole.
AXIS_TITLE_CHARS = 32


def _axis_title(text: str) -> str:
    if len(text) > AXIS_TITLE_CHARS:
        tail = AXIS_TITLE_CHARS // 2
        text = text[: AXIS_TITLE_CHARS - tail - 1] + "…" + text[-tail:]
    return _escape_template(text)


def _escape_template(text: str) -> str:
    # Plotly renders titles and hover text as a small HTML subset; a metric key is user input.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("%{", "%&#123;")


def history_figures(
    histories: dict[str, Series],
    *,
    options: HistoryOptions = HistoryOptions(),
    origin: int = 0,
    budget: int = RUN_PAGE_BUDGET,
) -> list[dict]:
    """A run page's history charts: one per stem (`train_loss` and `val_loss` together), each
    line thinned to `budget` points keeping its extremes."""
    figures = []
    for title, keys in group_by_stem(histories):
        lines = [(key, keep_extremes(histories[key], budget, smoothing=options.smoothing)) for key in keys]
        figures.append(run_history_figure(title, lines, options=options, origin=origin))
    return figures


# --- the compare page ------------------------------------------------------------------------
# Builders from tracker.selectors.compare.ComparedRun-shaped data (run_id, label, parent_run_id,
# parent_name, params, metrics, pk) to figure dicts. Every number passes through finite_or_none:
# json_script writes NaN and Infinity as bare words that JSON.parse refuses.

# Plotly's "D3" qualitative palette: one colour per parent, the same on every compare chart.
PARENT_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
# A parallel-coordinates chart with more axes than this is unreadable at a page's width.
MAX_PARALLEL_AXES = 12
# Past this many categories on an axis, only every k-th is labelled (the rest would overlap).
MAX_TICK_LABELS = 25
# A history chart of more runs than this draws one trace per parent (runs split by gaps): a
# thousand SVG traces take seconds to draw and a legend of a thousand entries helps nobody.
MAX_HISTORY_TRACES = 100
# Beyond this many bars their run names cannot be read; they stay in the hover text.
MAX_BAR_LABELS = 60
# A legend of more entries than this is a list nobody reads (plotly scrolls a long one); a
# sweep's 25 children still get theirs.
MAX_LEGEND_ENTRIES = 30
MISSING_LABEL = "(none)"
TOP_LEVEL = "(top level)"


def _parses_as_numbers(values: list) -> bool:
    present = [value for value in values if value is not None]
    return bool(present) and all(finite_or_none(value) is not None for value in present)


def _category_order(values: list[str]) -> list[str]:
    return sorted(set(values), key=lambda value: (value.casefold(), value))


def _label(run) -> str:
    return _escape_template(run.label)


def _short_label(run) -> str:
    """A run's name where plotly writes it beside a point or under a bar: the whole name in
    its hover; shortened in its middle (dashboard/names.py), or a phone's chart shows a slice of
    the middle of each name, the same for every run of a sweep."""
    return _escape_template(short_name(run.label))


def _parent_groups(runs) -> list[tuple[str, str, list]]:
    """Runs grouped by parent in order of first appearance: (parent run id, legend name, runs).
    Grouped by id, not name: two parents may share a name."""
    groups: dict[str, list] = {}
    names: dict[str, str] = {}
    for run in runs:
        groups.setdefault(run.parent_run_id, []).append(run)
        names.setdefault(run.parent_run_id, run.parent_name or run.parent_run_id or TOP_LEVEL)
    return [(parent, _escape_template(names[parent]), members) for parent, members in groups.items()]


def _color(position: int) -> str:
    return PARENT_COLORS[position % len(PARENT_COLORS)]


def run_colors(run_ids: list[str]) -> dict[str, str]:
    """One colour per run, the same on every chart of a page and on the table's row marker:
    the D3 palette for the first ten runs, then hues a golden angle apart (never two neighbours
    alike, however many runs)."""
    colors = {}
    for position, run_id in enumerate(dict.fromkeys(run_ids)):
        if position < len(PARENT_COLORS):
            colors[run_id] = PARENT_COLORS[position]
        else:
            hue = (position * 137.508) % 360
            colors[run_id] = _hsl_to_hex(hue, 0.62, 0.45 if position % 2 else 0.58)
    return colors


def _hsl_to_hex(hue: float, saturation: float, lightness: float) -> str:
    chroma = (1 - abs(2 * lightness - 1)) * saturation
    second = chroma * (1 - abs((hue / 60) % 2 - 1))
    red, green, blue = [
        (chroma, second, 0),
        (second, chroma, 0),
        (0, chroma, second),
        (0, second, chroma),
        (second, 0, chroma),
        (chroma, 0, second),
    ][int(hue // 60) % 6]
    offset = lightness - chroma / 2
    return "#" + "".join(f"{round((channel + offset) * 255):02x}" for channel in (red, green, blue))


# A parent's marker shape on a scatter whose colours are the runs'.
PARENT_SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon", "pentagon"]
# A positive numeric axis whose largest value is this many times its smallest is drawn in log.
LOG_AXIS_SPAN = 1000.0
# Points labelled with their run's name on a scatter at most (more would overlap).
MAX_POINT_LABELS = 30
# ...and at most this many at one x: a sweep's grid puts many runs on each value of a param, and
# their names printed over one another in a column (25 children over two values: 12 a column).
MAX_POINT_LABELS_AT_ONE_X = 3


def spans_decades(numbers: list[float | None]) -> bool:
    """Positive values spanning 3+ decades: a log-uniform learning rate, drawn on a log axis."""
    present = [number for number in numbers if number is not None]
    return bool(present) and min(present) > 0 and max(present) / min(present) >= LOG_AXIS_SPAN


def _compare_layout(title: str, **extra) -> dict:
    layout = {
        # Pinned to the top left of the chart, whatever the top margin its axes labels need.
        "title": {
            "text": title,
            "font": {"size": 14},
            "x": 0,
            "xanchor": "left",
            "yref": "container",
            "y": 1,
            "yanchor": "top",
            "pad": {"t": 12, "l": 8},
        },
        "font": {"family": FONT, "size": 12, "color": TEXT},
        "margin": {"l": 56, "r": 24, "t": 48, "b": 48},
        "height": 380,
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "hoverlabel": {"namelength": -1},
    }
    layout.update(extra)
    return layout


def _axis(title: str, **extra) -> dict:
    return {"title": {"text": title}, "gridcolor": GRID, "zeroline": False, "automargin": True, **extra}


def _without_value(count: int, what: str) -> str:
    return f" <span style='color:#6b7280'>({count} without {what} not shown)</span>" if count else ""


def _param_dimension(key: str, raw_values: list[str | None]) -> dict:
    """One parallel-coordinates axis. A numeric param is a number axis (a run without it sits
    below the range, at "(none)"); any other param gets one tick per value, in order."""
    label = _escape_template(key)
    if _parses_as_numbers(raw_values):
        numbers = [finite_or_none(value) for value in raw_values]
        if spans_decades(numbers):
            return _log_dimension(label, numbers)
        if None not in numbers:
            return {"label": label, "values": numbers}
        present = [number for number in numbers if number is not None]
        low, high = min(present), max(present)
        span = (high - low) or abs(high) or 1.0
        missing_at = low - span * 0.2
        ticks = sorted({low, high, *(low + span * i / 4 for i in range(1, 4) if high > low)})
        return {
            "label": label,
            "values": [missing_at if number is None else number for number in numbers],
            "range": [missing_at, high],
            "tickvals": [missing_at, *ticks],
            "ticktext": [MISSING_LABEL, *(f"{tick:.4g}" for tick in ticks)],
        }
    categories: list = _category_order([value for value in raw_values if value is not None])
    if None in raw_values:
        categories.append(None)  # last, labelled MISSING_LABEL
    index = {category: position for position, category in enumerate(categories)}
    labels = [MISSING_LABEL if category is None else _escape_template(category[:24]) for category in categories]
    every = max(1, math.ceil(len(categories) / MAX_TICK_LABELS))
    return {
        "label": label,
        "values": [index[value] for value in raw_values],
        "range": [0, max(len(categories) - 1, 1)],
        "tickvals": list(range(len(categories)))[::every],
        "ticktext": labels[::every],
    }


def _log_dimension(label: str, numbers: list[float | None]) -> dict:
    """A numeric axis in log10, ticked at its decades with the values themselves; a run without
    the param sits a decade below the range, at "(none)"."""
    logs = [None if number is None else math.log10(number) for number in numbers]
    present = [value for value in logs if value is not None]
    low, high = math.floor(min(present)), math.ceil(max(present))
    decades = list(range(low, high + 1))
    values, tickvals, ticktext = logs, decades, [f"1e{decade}" for decade in decades]
    if None in logs:
        values = [low - 1 if value is None else value for value in logs]
        tickvals, ticktext = [low - 1, *decades], [MISSING_LABEL, *ticktext]
    return {
        "label": f"{label} (log)",
        "values": values,
        "range": [tickvals[0], high],
        "tickvals": tickvals,
        "ticktext": ticktext,
    }


def parallel_coordinates_figure(runs, param_keys: list[str], metric_key: str, *, goal: str = "min") -> dict:
    """One line per run across the params that vary among the runs (all of them when none
    varies; at most MAX_PARALLEL_AXES), ending on `metric_key`, which also colours the line.
    Runs without a number for the metric are left out: a line needs a colour."""
    drawn = [run for run in runs if finite_or_none(run.metrics.get(metric_key)) is not None]
    varying = [key for key in param_keys if len({run.params.get(key) for run in drawn}) > 1]
    axes = (varying or list(param_keys))[:MAX_PARALLEL_AXES]
    metric_values = [finite_or_none(run.metrics[metric_key]) for run in drawn]
    dimensions = [_param_dimension(key, [run.params.get(key) for run in drawn]) for key in axes]
    dimensions.append({"label": _escape_template(metric_key), "values": metric_values})
    title = f"Params → {_escape_template(metric_key)}" + _without_value(len(runs) - len(drawn), metric_key)
    return {
        "data": [
            {
                "type": "parcoords",
                "dimensions": dimensions,
                "line": {
                    "color": metric_values,
                    "colorscale": "Viridis",
                    # The best runs are always the bright end of the scale, whatever the goal.
                    "reversescale": goal != "max",
                    "showscale": True,
                    "colorbar": {"title": {"text": _escape_template(metric_key)}, "thickness": 12},
                },
                "labelangle": -20 if len(dimensions) > 6 else 0,
                "labelside": "top",
            }
        ],
        "layout": _compare_layout(title, margin={"l": 72, "r": 72, "t": 80, "b": 32}, height=420),
    }


def _value_of(run, column: str):
    """A run's value for `params.<key>` or `metrics.<key>`; None when it has none."""
    kind, _, key = column.partition(".")
    return run.params.get(key) if kind == "params" else run.metrics.get(key)


def scatter_figure(
    runs, x_column: str, y_metric: str, *, colors: dict | None = None, log_x: bool = False, log_y: bool = False
) -> dict:
    """`y_metric` against `x_column` (`params.<key>` or `metrics.<key>`), one trace (colour) per
    parent. A param that is not numeric in every run is a categorical axis, values in order.
    Runs without a number for y, or without an x value, are left out."""
    x_values = [_value_of(run, x_column) for run in runs]
    categorical = x_column.startswith("params.") and not _parses_as_numbers(x_values)
    x_name = _escape_template(x_column.partition(".")[2])

    def x_of(run):
        value = _value_of(run, x_column)
        return (_escape_template(value) if value is not None else None) if categorical else finite_or_none(value)

    drawable = [run for run in runs if x_of(run) is not None and finite_or_none(run.metrics.get(y_metric)) is not None]
    most_at_one_x = max(Counter(x_of(run) for run in drawable).values(), default=0)
    labelled = bool(colors) and len(drawable) <= MAX_POINT_LABELS and most_at_one_x <= MAX_POINT_LABELS_AT_ONE_X
    traces = []
    for position, (_, parent, members) in enumerate(_parent_groups(drawable)):
        # The run's own colour when the page gives one (the same on every chart), else the parent's.
        color = [colors[run.run_id] for run in members] if colors else _color(position)
        traces.append(
            {
                "type": "scatter",
                "mode": "markers+text" if labelled else "markers",
                "name": parent,
                "x": [x_of(run) for run in members],
                "y": [finite_or_none(run.metrics[y_metric]) for run in members],
                "hovertext": [_label(run) for run in members],
                "textposition": "top center",
                "textfont": {"size": 10, "color": MUTED},
                # Overlapping points of a large selection stay visible through one another. With
                # a colour per run, the parent is the marker's shape (and the legend's entry).
                "marker": {
                    "color": color,
                    "size": 8,
                    "opacity": 0.85 if len(drawable) <= 200 else 0.4,
                    "symbol": PARENT_SYMBOLS[position % len(PARENT_SYMBOLS)] if colors else "circle",
                },
                "hovertemplate": f"%{{hovertext}}<br>{x_name} %{{x}}<br>{_escape_template(y_metric)} %{{y:.4g}}"
                f"<extra>{parent}</extra>",
            }
        )
        if labelled:
            traces[-1]["text"] = [_short_label(run) for run in members]
    x_axis = _axis(x_name)
    if categorical:
        x_axis.update(type="category", categoryorder="category ascending")
    elif log_x or spans_decades([finite_or_none(_value_of(run, x_column)) for run in drawable]):
        x_axis.update(type="log")
    y_axis = _axis(_axis_title(y_metric))
    if log_y:
        y_axis.update(type="log")
    title = f"{_escape_template(y_metric)} vs {x_name}" + _without_value(len(runs) - len(drawable), "both values")
    layout = _compare_layout(title, xaxis=x_axis, yaxis=y_axis)
    layout["showlegend"] = 1 < len(traces) <= MAX_LEGEND_ENTRIES
    return {"data": traces, "layout": layout}


def _history_points(points) -> tuple[list, list]:
    if not points:
        return [], []
    steps, values = zip(*sorted(points, key=itemgetter(0)), strict=True)
    # Thinned lines are finite already (gaps are None): one numpy check, not a call a point.
    if None not in values and np.isfinite(np.asarray(values, dtype=np.float64)).all():
        return list(steps), list(values)
    return list(steps), [finite_or_none(value) for value in values]


def history_lines_figure(
    runs,
    histories: dict,
    key: str,
    *,
    colors: dict | None = None,
    log_y: bool = False,
    smoothed: dict | None = None,
    x_title: str = "step",
) -> dict:
    """One line per run of `key` by step, coloured by parent (by run when they share one
    parent, and by the page's run colours when given). `histories` maps run pk to its
    (x, value) points, already thinned (compare_views.compare_history). `smoothed` (the same
    shape) draws each run's EMA over its raw line made faint. Past MAX_HISTORY_TRACES runs,
    each parent's runs share a trace (the smoothed one when smoothing), a gap between one run
    and the next, so the browser draws a few paths instead of thousands."""
    with_history = [run for run in runs if histories.get(run.pk)]
    one_trace_per_run = len(with_history) <= MAX_HISTORY_TRACES
    groups = _parent_groups(with_history)
    traces = []
    for position, (group, parent, members) in enumerate(groups):
        drawn = smoothed if smoothed and not one_trace_per_run else histories
        lines = [(_label(run), *_history_points(drawn[run.pk])) for run in members]
        if one_trace_per_run:
            for line_number, (label, steps, values) in enumerate(lines):
                # Siblings of one parent only: a colour per run tells the lines apart.
                color = _color(line_number if len(groups) == 1 else position)
                if colors:
                    color = colors[members[line_number].run_id]
                raw = _history_trace(label, group, color, steps, values, [label] * len(steps))
                traces.append(raw)
                if smoothed:
                    raw.update(opacity=0.25, showlegend=False, smoothing_raw=True)
                    smooth_steps, smooth_values = _history_points(smoothed[members[line_number].pk])
                    traces.append(
                        _history_trace(label, group, color, smooth_steps, smooth_values, [label] * len(smooth_steps))
                    )
            continue
        steps, values, text = [], [], []
        for label, run_steps, run_values in lines:
            steps += [*run_steps, None]
            values += [*run_values, None]
            text += [label] * (len(run_steps) + 1)
        shared = _history_trace(parent, group, _color(position), steps, values, text)
        # Hundreds of overlapping lines: thin and translucent, so density shows where they bunch.
        shared.update(opacity=0.35, line={"color": _color(position), "width": 1})
        traces.append(shared)
    # Markers only where there are few enough to tell apart.
    markers = len(traces) <= 20 and all(len(trace["x"]) <= 30 for trace in traces)
    for trace in traces:
        trace["mode"] = "lines+markers" if markers else "lines"
        if trace.pop("smoothing_raw", False):
            trace["hoverinfo"] = "skip"  # the smoothed line above it answers the hover
            continue
        trace["hovertemplate"] = f"%{{text}}<br>{x_title} %{{x}}<br>{_escape_template(key)} %{{y:.4g}}<extra></extra>"
    title = f"{_escape_template(key)} by {x_title}" + _without_value(len(runs) - len(with_history), "a history")
    y_axis = _axis(_axis_title(key))
    if log_y:
        y_axis.update(type="log")
    x_axis = _axis(x_title)
    if x_title == X_MODES["wall"]:
        x_axis["type"] = "date"
    layout = _compare_layout(title, xaxis=x_axis, yaxis=y_axis)
    legend_entries = sum(1 for trace in traces if trace.get("showlegend", True))
    layout["showlegend"] = 1 < legend_entries <= MAX_LEGEND_ENTRIES
    return {"data": traces, "layout": layout}


def compare_line(thinned: Thinned, options: HistoryOptions, origin: int = 0) -> tuple[list, list | None]:
    """A run's thinned history as (x, value) points for history_lines_figure, x by the chosen
    axis (relative time from `origin`, epoch ms), NaN/inf steps as gaps; and its smoothed
    points when smoothing is on."""
    x = _x_values(thinned.steps, thinned.timestamps, options, origin)
    gaps_x = _x_values([m.step for m in thinned.marks], [m.timestamp for m in thinned.marks], options, origin)
    raw = list(zip(x, thinned.values, strict=True))
    if gaps_x:
        raw = sorted([*raw, *((at, None) for at in gaps_x)], key=itemgetter(0))
    smooth = list(zip(x, thinned.smoothed, strict=True)) if thinned.smoothed is not None else None
    return raw, smooth


def _history_trace(name: str, group: str, color: str, steps: list, values: list, text: list) -> dict:
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "legendgroup": group,
        "x": steps,
        "y": values,
        "text": text,
        "line": {"color": color, "width": 1.5},
        "marker": {"size": 4},
        # A NaN in the middle of a run, and the break between two runs of a shared trace.
        "connectgaps": False,
    }


def metric_bars_figure(runs, key: str, *, goal: str = "min", colors: dict | None = None, log_y: bool = False) -> dict:
    """`key` per run as bars, best first by the goal, coloured by parent. Bars are placed by run
    id (two runs may share a name) and labelled with the run's name."""
    drawn = [run for run in runs if finite_or_none(run.metrics.get(key)) is not None]
    drawn.sort(key=lambda run: finite_or_none(run.metrics[key]), reverse=goal == "max")
    color_of, parent_of = {}, {}
    for position, (_, parent, members) in enumerate(_parent_groups(drawn)):
        for run in members:
            color_of[run.run_id] = colors[run.run_id] if colors else _color(position)
            parent_of[run.run_id] = parent
    run_ids = [run.run_id for run in drawn]
    labels = [_label(run) for run in drawn]
    # No vertical grid: a line per category would grey out the chart behind a thousand bars.
    x_axis = _axis("", type="category", showgrid=False)
    if len(drawn) > MAX_BAR_LABELS:
        # Hidden labels are not sent: at 10,000 runs they were a third of the figure.
        x_axis.update(showticklabels=False, title={"text": f"{len(drawn)} runs, best first"})
    else:
        x_axis.update(tickvals=run_ids, ticktext=[_short_label(run) for run in drawn])
    title = f"{_escape_template(key)} per run ({goal}, best first)" + _without_value(len(runs) - len(drawn), key)
    bars = {
        "type": "bar",
        "x": run_ids,
        "y": [finite_or_none(run.metrics[key]) for run in drawn],
        "text": labels,
        "textposition": "none",
        "hovertemplate": f"%{{text}}<br>{_escape_template(key)} %{{y:.4g}}<extra>%{{customdata}}</extra>",
    }
    parents = set(parent_of.values())
    if len(parents) == 1:
        # One parent (the "compare children" page): its name once, not once per bar.
        (parent,) = parents
        bars["hovertemplate"] = bars["hovertemplate"].replace("%{customdata}", parent)
    else:
        bars["customdata"] = [parent_of[run_id] for run_id in run_ids]
    if colors or len(parents) > 1:
        bars["marker"] = {"color": [color_of[run_id] for run_id in run_ids]}
    elif run_ids:
        # One parent and no per-run colours: one colour, not one per bar (10,000 bars' worth of JSON).
        bars["marker"] = {"color": color_of[run_ids[0]]}
    return {
        "data": [bars],
        "layout": _compare_layout(
            title, xaxis=x_axis, yaxis=_axis(_axis_title(key), **({"type": "log"} if log_y else {})), bargap=0.15
        ),
    }


# --- bands: a parent's children aggregated by step -----------------------------------------------

BAND_MODES = {"std": "mean ± 1 std", "minmax": "mean, min–max", "quartiles": "median, quartiles"}


def _fill(color: str, alpha: float = 0.2) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def band_bounds(band, mode: str) -> tuple[list, list, list, str]:
    """(centre, lower, upper, centre's name) of a band in `mode`."""
    if mode == "minmax":
        return band.mean, band.low, band.high, "mean"
    if mode == "quartiles" and band.median is not None:
        return band.median, band.q1, band.q3, "median"
    lower = [mean - std for mean, std in zip(band.mean, band.std, strict=True)]
    upper = [mean + std for mean, std in zip(band.mean, band.std, strict=True)]
    return band.mean, lower, upper, "mean"


def _counted(band, count: int | None = None) -> str:
    """What a band's `count` counts: children at a step, or values in a bucket of steps (plural
    for a count not known here, as a hover's, which varies by point)."""
    if band.bucket == 1:
        return "child" if count == 1 else "children"
    return f"{'value' if count == 1 else 'values'} (buckets of {band.bucket} steps)"


def band_traces(label: str, color: str, band, mode: str, *, link: str = "") -> list[dict]:
    """A band's three traces: its lower edge (invisible), its upper edge filled down to the
    lower, and its centre line, whose hover gives the children counted at that step. `link`
    (the comparison of the band's children) travels in the traces' meta: a click on the
    band's fill or its centre line opens it (run.js), and their hover says so."""
    centre, lower, upper, centre_name = band_bounds(band, mode)
    name = _escape_template(label)
    edge = {"type": "scatter", "mode": "lines", "x": band.steps, "line": {"width": 0, "color": color}}
    edge.update(legendgroup=name, showlegend=False, hoverinfo="skip", meta={"link": link})
    lower_trace = {**edge, "y": [finite_or_none(value) for value in lower]}
    upper_y = [finite_or_none(value) for value in upper]
    upper_trace = {**edge, "y": upper_y, "fill": "tonexty", "fillcolor": _fill(color)}
    click = ""
    if link:
        # A fill answers the hover (and so the click) anywhere inside it, with its name only.
        upper_trace.update(name=f"{name}: click to compare its children", hoveron="fills", hoverinfo="name")
        click = "<br><i>click to compare these children</i>"
    counts = zip(band.count, lower, upper, strict=True)
    customdata = [[count, finite_or_none(low), finite_or_none(high)] for count, low, high in counts]
    centre_trace = {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "legendgroup": name,
        "x": band.steps,
        "y": [finite_or_none(value) for value in centre],
        "line": {"color": color, "width": 2},
        "customdata": customdata,
        "meta": {"link": link},
        "hovertemplate": f"{name}<br>step %{{x}}<br>{centre_name} %{{y:.4g}}"
        f"<br>band %{{customdata[1]:.4g}} – %{{customdata[2]:.4g}}"
        f"<br>%{{customdata[0]}} {_counted(band)}{click}<extra></extra>",
    }
    return [lower_trace, upper_trace, centre_trace]


def band_figure(
    key: str,
    bands: list[tuple[str, str, object, str]],
    *,
    mode: str = "std",
    child_lines: dict[str, list[tuple[str, list]]] | None = None,
    log_y: bool = False,
    y_title: str = "",
) -> dict:
    """`key` (a metric, or the stem of several) of each parent's children as a band: `bands`
    is [(label, colour, Band, link)], `y_title` the y axis's (`key` by default). `child_lines`
    (label → [(child name, [(step, value)])]) adds each child as a thin line in its band's
    colour, all of one band in a single trace split by gaps."""
    traces = []
    for label, color, band, link in bands:
        if child_lines and child_lines.get(label):
            steps, values, text = [], [], []
            for child_label, points in child_lines[label]:
                steps += [step for step, _ in points] + [None]
                values += [finite_or_none(value) for _, value in points] + [None]
                text += [_escape_template(child_label)] * (len(points) + 1)
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{_escape_template(label)}: children",
                    "legendgroup": _escape_template(label),
                    "showlegend": False,
                    "x": steps,
                    "y": values,
                    "text": text,
                    "opacity": 0.35,
                    "line": {"color": color, "width": 1},
                    "connectgaps": False,
                    "hovertemplate": "%{text}<br>step %{x}<br>%{y:.4g}<extra></extra>",
                }
            )
        traces += band_traces(label, color, band, mode, link=link)
    title = f"{_escape_template(key)} by step, {BAND_MODES.get(mode, BAND_MODES['std'])}"
    children = max((max(band.count, default=0) for _, _, band, _ in bands), default=0)
    counted = _counted(bands[0][2], children) if bands else "children"
    clickable = " · click a band to compare its children" if any(link for _, _, _, link in bands) else ""
    # The note on a line of its own: beside the title it ran off a phone's width.
    title += f"<br><span style='font-size:11px;color:{MUTED}'>up to {children:,} {counted} a step{clickable}</span>"
    y_axis = _axis(_axis_title(y_title or key))
    if log_y:
        y_axis["type"] = "log"
    layout = _compare_layout(title, xaxis=_axis("step"), yaxis=y_axis, height=380)
    layout["margin"] = {**layout["margin"], "t": 64}
    layout["showlegend"] = len(bands) > 1
    layout["legend"] = LEGEND_BELOW
    layout["meta"] = {"bands": len(bands)}
    return {"data": traces, "layout": layout}


# --- parameter importance ------------------------------------------------------------------------

SIGN_COLORS = {"+": "#2563eb", "-": "#ea580c", "": "#9ca3af"}


def importance_figure(key: str, params: list[dict]) -> dict:
    """Stored importance (tracker/summaries/importance.py) as ranked horizontal bars, most important
    on top, coloured by their correlation's sign; a log-scaled param says so in its name. What the
    bars mean is the card's caption (dashboard/importance_charts.py), which wraps on a phone where a
    plotly title cannot."""
    ranked = list(params)[:20]
    names = [_escape_template(item["param"]) + (" (log)" if item.get("log") else "") for item in ranked]
    signs = []
    for item in ranked:
        correlation = item.get("correlation")
        signs.append("" if correlation is None else ("+" if correlation >= 0 else "-"))
    labels = [
        "categorical" if item.get("correlation") is None else f"corr {item['correlation']:+.2f}" for item in ranked
    ]
    importances = [round(item["importance"], 4) for item in ranked]
    spreads = [round(item["spread"], 4) for item in ranked]
    trace = {
        "type": "bar",
        "orientation": "h",
        "y": names[::-1],
        "x": importances[::-1],
        "error_x": {"type": "data", "array": spreads[::-1], "thickness": 1},
        "customdata": labels[::-1],
        "marker": {"color": [SIGN_COLORS[sign] for sign in signs][::-1]},
        "hovertemplate": "%{y}<br>importance %{x:.2f}<br>%{customdata}<extra></extra>",
    }
    # The correlation under each param's name: beside its bar it sat on the bar's whisker.
    ticks = [
        f"{name}<br><span style='font-size:10px;color:{MUTED}'>{label}</span>"
        for name, label in zip(names, labels, strict=True)
    ]
    widest = max([value + spread for value, spread in zip(importances, spreads, strict=True)] + [0.1])
    layout = _compare_layout(
        f"Param importance for {_escape_template(key)}",
        # The whole whisker in view: a bar's spread can reach past the largest bar.
        xaxis=_axis("share of importance", range=[0, widest * 1.05]),
        yaxis={"automargin": True, "tickvals": names[::-1], "ticktext": ticks[::-1]},
        height=max(180, 72 + 36 * len(ranked)),
        margin={"l": 8, "r": 24, "t": 40, "b": 44},
    )
    layout["meta"] = {"importance": _escape_template(key)}
    return {"data": [trace], "layout": layout}
