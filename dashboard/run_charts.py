"""The run page's history charts and the zoom behind them: reads from
tracker/selectors/histories.py, figures from dashboard/charts.py."""

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.http import QueryDict
from django.urls import reverse

from dashboard.charts import HistoryOptions, ZoomRange, group_by_stem, history_figures, run_history_figure
from dashboard.downsample import RUN_PAGE_BUDGET, keep_extremes
from tracker.constants import is_system_metric
from tracker.models import Run
from tracker.selectors.histories import history_range, history_stats, run_histories, time_origins

# The page brings this many charts with it; the rest (a run logging per-layer statistics can have
# hundreds) are fetched from the zoom URL as they scroll into view (run.js). A run of 300 metrics
# of 1,000 steps each was a 9.5 MB page that took 1.5 s to build and drew 300 charts on load.
INLINE_CHARTS = 12
# The most lines one chart fetches: every split prefix with each separator (dashboard/charts.py).
MAX_KEYS_PER_CHART = 32


@dataclass
class RunCharts:
    options: HistoryOptions
    # Each {id, title, figure} drawn from the page, or {id, title, figure_url} fetched when seen.
    figures: list[dict] = field(default_factory=list)  # the model's metrics
    system_figures: list[dict] = field(default_factory=list)  # the machine's (system/...), shown after
    zoom_url: str = ""  # where a chart fetches a zoomed range (run.js adds the keys and range)
    keep: dict = field(default_factory=dict)  # the page's other choices, kept by this form
    split_keys: list[str] = field(default_factory=list)  # keys logged on several datasets

    @property
    def smoothing_percent(self) -> int:
        return round(self.options.smoothing * 100)


def run_charts(run: Run, query: QueryDict, *, keep: dict | None = None) -> RunCharts:
    """Every multi-step metric of `run`, one chart per stem, the model's before the machine's;
    the first INLINE_CHARTS with their figures, the others as URLs. Queries: the keys' counts (1),
    the inline charts' short histories (1), and one per history longer than the selector's
    LOAD_LIMIT among them."""
    options = HistoryOptions.from_query(query)
    found = history_stats(run)
    stats = found.series
    groups = group_by_stem(key for key in stats if not is_system_metric(key))
    system_groups = group_by_stem(key for key in stats if is_system_metric(key))
    ordered = groups + system_groups
    inline_keys = [key for _, keys in ordered[:INLINE_CHARTS] for key in keys]
    histories = run_histories(run, {key: stats[key] for key in inline_keys}, budget=RUN_PAGE_BUDGET)
    origin = _origin(run, options)
    history_url = reverse("dashboard:run-history", args=[run.run_id])
    zoom_url = history_url + "?" + urlencode(options.query)
    charts = []
    for index, (title, keys) in enumerate(ordered):
        chart = {"id": f"figure-{index}", "title": title}
        if index < INLINE_CHARTS:
            chart["figure"] = history_figures({key: histories[key] for key in keys}, options=options, origin=origin)[0]
        else:
            query = [*options.query.items(), *(("key", key) for key in keys)]
            chart["figure_url"] = history_url + "?" + urlencode(query)
        charts.append(chart)
    return RunCharts(options, charts[: len(groups)], charts[len(groups) :], zoom_url, keep or {}, found.split_keys)


def _origin(run: Run, options: HistoryOptions) -> int:
    """Where the run's relative time counts from (a query only for a run without a start time)."""
    return time_origins({run.pk: run.start_time}).get(run.pk, 0) if options.x == "relative" else 0


def zoomed_figure(run: Run, query: QueryDict) -> dict:
    """The chart of the keys named by `key` (one stem) between `from` and `to`, at full
    resolution up to the budget: what the page fetches when the viewer zooms; without a range,
    the whole history thinned, as a chart the page did not bring is fetched."""
    options = HistoryOptions.from_query(query)
    zoom = ZoomRange.from_query(query, options)
    keys = [key for key in query.getlist("key") if key][:MAX_KEYS_PER_CHART]
    lines = []
    for key in keys:
        series = history_range(run, key, budget=RUN_PAGE_BUDGET, low=zoom.low, high=zoom.high, by=zoom.by)
        lines.append((key, keep_extremes(series, RUN_PAGE_BUDGET, smoothing=options.smoothing)))
    title = group_by_stem(keys)[0][0] if keys else ""
    return run_history_figure(title, lines, options=options, origin=_origin(run, options))
