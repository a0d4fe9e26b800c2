"""Plotly figure dicts, built as pure functions from tracking data and tested without a browser.
The page hands each dict to plotly.js through json_script."""

import math
from collections.abc import Iterable

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
    values = [None if value is None or math.isnan(value) else value for _, value in points]
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
