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


@dataclass
class RunCharts:
    options: HistoryOptions
    figures: list[dict] = field(default_factory=list)  # each {id, figure}: the model's metrics
    system_figures: list[dict] = field(default_factory=list)  # the machine's (system/...), shown after
    zoom_url: str = ""  # where a chart fetches a zoomed range (run.js adds the keys and range)
    keep: dict = field(default_factory=dict)  # the page's other choices, kept by this form

    @property
    def smoothing_percent(self) -> int:
        return round(self.options.smoothing * 100)


def run_charts(run: Run, query: QueryDict, *, keep: dict | None = None) -> RunCharts:
    """Every multi-step metric of `run`, one chart per stem. Queries: the keys' counts (1), the
    short histories (1), and one per history longer than the selector's LOAD_LIMIT."""
    options = HistoryOptions.from_query(query)
    stats = history_stats(run)
    histories = run_histories(run, stats, budget=RUN_PAGE_BUDGET) if stats else {}
    origin = _origin(run, options)
    model = history_figures(
        {k: v for k, v in histories.items() if not is_system_metric(k)}, options=options, origin=origin
    )
    system = history_figures(
        {k: v for k, v in histories.items() if is_system_metric(k)}, options=options, origin=origin
    )
    zoom_url = reverse("dashboard:run-history", args=[run.run_id]) + "?" + urlencode(options.query)
    figures = [{"id": f"figure-{i}", "figure": f} for i, f in enumerate(model + system)]
    return RunCharts(options, figures[: len(model)], figures[len(model) :], zoom_url, keep or {})


def _origin(run: Run, options: HistoryOptions) -> int:
    """Where the run's relative time counts from (a query only for a run without a start time)."""
    return time_origins({run.pk: run.start_time}).get(run.pk, 0) if options.x == "relative" else 0


def zoomed_figure(run: Run, query: QueryDict) -> dict:
    """The chart of the keys named by `key` (one stem) between `from` and `to`, at full
    resolution up to the budget: what the page fetches when the viewer zooms."""
    options = HistoryOptions.from_query(query)
    zoom = ZoomRange.from_query(query, options)
    keys = [key for key in query.getlist("key") if key][:6]
    lines = []
    for key in keys:
        series = history_range(run, key, budget=RUN_PAGE_BUDGET, low=zoom.low, high=zoom.high, by=zoom.by)
        lines.append((key, keep_extremes(series, RUN_PAGE_BUDGET, smoothing=options.smoothing)))
    title = group_by_stem(keys)[0][0] if keys else ""
    return run_history_figure(title, lines, options=options, origin=_origin(run, options))
