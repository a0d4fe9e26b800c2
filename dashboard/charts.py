"""Plotly figure dicts, built as pure functions from tracking data and tested without a browser.
The page hands each dict to plotly.js through json_script."""

import math
from collections.abc import Iterable

from tracker.values import finite_or_none, number_or_none

# A line of more points than a chart's width shows nothing more; a long training history
# (100,000 steps) is thinned to this many points, always keeping the first and the last.
MAX_POINTS = 2000

ACCENT = "#2563eb"
GRID = "#e5e7eb"
TEXT = "#374151"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def thin(points: list, limit: int = MAX_POINTS) -> list:
    """Every k-th point so at most `limit` remain, the last one always kept."""
    if len(points) <= limit:
        return points
    stride = math.ceil(len(points) / (limit - 1))
    return points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])


def metric_history_figure(key: str, points: Iterable[tuple[int, float | None]]) -> dict:
    """A line of one metric's values by step. NaN (stored as None) leaves a gap."""
    points = thin(sorted(points, key=lambda point: point[0]))
    steps = [step for step, _ in points]
    values = [number_or_none(value) for _, value in points]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers" if len(points) <= 50 else "lines",
                "x": steps,
                "y": values,
                "name": key,
                "line": {"color": ACCENT, "width": 2},
                "marker": {"size": 5},
                "hovertemplate": "step %{x}<br>" + _escape_template(key) + " %{y:.4g}<extra></extra>",
            }
        ],
        "layout": {
            "title": {"text": _escape_template(key), "x": 0, "xanchor": "left", "font": {"size": 14}},
            "font": {"family": FONT, "size": 12, "color": TEXT},
            "margin": {"l": 48, "r": 16, "t": 36, "b": 36},
            "height": 260,
            "xaxis": {"title": {"text": "step"}, "gridcolor": GRID, "zeroline": False},
            "yaxis": {"gridcolor": GRID, "zeroline": False},
            "plot_bgcolor": "white",
            "paper_bgcolor": "white",
            "showlegend": False,
        },
    }


def _escape_template(text: str) -> str:
    # Plotly renders titles and hover text as a small HTML subset; a metric key is user input.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("%{", "%&#123;")


def history_figures(history: Iterable[tuple[str, int, float | None]]) -> list[dict]:
    """One figure per metric key with more than one step, keys in alphabetical order."""
    by_key: dict[str, list] = {}
    for key, step, value in history:
        by_key.setdefault(key, []).append((step, value))
    return [metric_history_figure(key, points) for key, points in sorted(by_key.items()) if len(points) > 1]


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
MISSING_LABEL = "(none)"
TOP_LEVEL = "(top level)"


def _parses_as_numbers(values: list) -> bool:
    present = [value for value in values if value is not None]
    return bool(present) and all(finite_or_none(value) is not None for value in present)


def _category_order(values: list[str]) -> list[str]:
    return sorted(set(values), key=lambda value: (value.casefold(), value))


def _label(run) -> str:
    return _escape_template(run.label)


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


def scatter_figure(runs, x_column: str, y_metric: str) -> dict:
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
    traces = []
    for position, (_, parent, members) in enumerate(_parent_groups(drawable)):
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": parent,
                "x": [x_of(run) for run in members],
                "y": [finite_or_none(run.metrics[y_metric]) for run in members],
                "text": [_label(run) for run in members],
                # Overlapping points of a large selection stay visible through one another.
                "marker": {"color": _color(position), "size": 8, "opacity": 0.85 if len(drawable) <= 200 else 0.4},
                "hovertemplate": f"%{{text}}<br>{x_name} %{{x}}<br>{_escape_template(y_metric)} %{{y:.4g}}"
                f"<extra>{parent}</extra>",
            }
        )
    x_axis = _axis(x_name)
    if categorical:
        x_axis.update(type="category", categoryorder="category ascending")
    title = f"{_escape_template(y_metric)} vs {x_name}" + _without_value(len(runs) - len(drawable), "both values")
    layout = _compare_layout(title, xaxis=x_axis, yaxis=_axis(_escape_template(y_metric)))
    layout["showlegend"] = 1 < len(traces) <= 20
    return {"data": traces, "layout": layout}


def _history_points(points) -> tuple[list, list]:
    ordered = sorted(points, key=lambda point: point[0])
    return [step for step, _ in ordered], [finite_or_none(value) for _, value in ordered]


def history_lines_figure(runs, histories: dict, key: str) -> dict:
    """One line per run of `key` by step, coloured by parent (by run when they share one
    parent). `histories` maps run pk to its
    (step, value) points (already thinned: tracker.selectors.compare.sampled_histories). Past
    MAX_HISTORY_TRACES runs, each parent's runs share a trace, a gap between one run and the
    next, so the browser draws a few paths instead of thousands."""
    with_history = [run for run in runs if histories.get(run.pk)]
    one_trace_per_run = len(with_history) <= MAX_HISTORY_TRACES
    groups = _parent_groups(with_history)
    traces = []
    for position, (group, parent, members) in enumerate(groups):
        lines = [(_label(run), *_history_points(histories[run.pk])) for run in members]
        if one_trace_per_run:
            for line_number, (label, steps, values) in enumerate(lines):
                # Siblings of one parent only: a colour per run tells the lines apart.
                color = _color(line_number if len(groups) == 1 else position)
                traces.append(_history_trace(label, group, color, steps, values, [label] * len(steps)))
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
        trace["hovertemplate"] = f"%{{text}}<br>step %{{x}}<br>{_escape_template(key)} %{{y:.4g}}<extra></extra>"
    title = f"{_escape_template(key)} by step" + _without_value(len(runs) - len(with_history), "a history")
    layout = _compare_layout(title, xaxis=_axis("step"), yaxis=_axis(_escape_template(key)))
    layout["showlegend"] = 1 < len(traces) <= 20
    return {"data": traces, "layout": layout}


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


def metric_bars_figure(runs, key: str, *, goal: str = "min") -> dict:
    """`key` per run as bars, best first by the goal, coloured by parent. Bars are placed by run
    id (two runs may share a name) and labelled with the run's name."""
    drawn = [run for run in runs if finite_or_none(run.metrics.get(key)) is not None]
    drawn.sort(key=lambda run: finite_or_none(run.metrics[key]), reverse=goal == "max")
    color_of, parent_of = {}, {}
    for position, (_, parent, members) in enumerate(_parent_groups(drawn)):
        for run in members:
            color_of[run.run_id], parent_of[run.run_id] = _color(position), parent
    run_ids = [run.run_id for run in drawn]
    labels = [_label(run) for run in drawn]
    # No vertical grid: a line per category would grey out the chart behind a thousand bars.
    x_axis = _axis("", type="category", showgrid=False)
    if len(drawn) > MAX_BAR_LABELS:
        # Hidden labels are not sent: at 10,000 runs they were a third of the figure.
        x_axis.update(showticklabels=False, title={"text": f"{len(drawn)} runs, best first"})
    else:
        x_axis.update(tickvals=run_ids, ticktext=labels)
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
        # One parent (the "compare children" page): one colour and one name, not one per bar.
        (parent,) = parents
        bars["marker"] = {"color": color_of[run_ids[0]]}
        bars["hovertemplate"] = bars["hovertemplate"].replace("%{customdata}", parent)
    else:
        bars["customdata"] = [parent_of[run_id] for run_id in run_ids]
        bars["marker"] = {"color": [color_of[run_id] for run_id in run_ids]}
    return {
        "data": [bars],
        "layout": _compare_layout(title, xaxis=x_axis, yaxis=_axis(_escape_template(key)), bargap=0.15),
    }
