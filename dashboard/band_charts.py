"""Band charts: a parent's children aggregated by step (the run page) and several parents side
by side ("compare sweeps"). Bands from tracker/summaries/bands.py (kept by the worker, or
aggregated here when they are not current), figures from dashboard/charts.py."""

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.core.cache import cache
from django.http import QueryDict
from django.urls import reverse

from dashboard.charts import BAND_MODES, LINE_COLORS, PARENT_COLORS, band_figure, group_by_stem
from dashboard.downsample import keep_extremes
from tracker.models import Run
from tracker.selectors.histories import selection_histories
from tracker.summaries.bands import band_keys, current_bands, parent_bands, stored_bands

# Each child as a thin line: this many points each at most (a band of 1,000 children is 200,000).
CHILD_LINE_POINTS = 200
# Children drawn as lines at most; the band itself counts them all.
MAX_CHILD_LINES = 1000
# A parent's bands are kept this long at most for the same summary version (see parent_band_charts).
CACHE_SECONDS = 600


@dataclass(frozen=True)
class BandOptions:
    mode: str = "std"
    lines: bool = False  # each child as a thin line

    @classmethod
    def from_query(cls, query: QueryDict) -> "BandOptions":
        mode = query.get("band", "std")
        return cls(mode=mode if mode in BAND_MODES else "std", lines=query.get("lines") == "1")


@dataclass
class BandCharts:
    options: BandOptions
    figures: list[dict] = field(default_factory=list)  # each {id, figure}
    modes: dict = field(default_factory=lambda: BAND_MODES)
    keep: dict = field(default_factory=dict)  # the page's other choices, kept by this form


def children_link(parent: Run, key: str) -> str:
    """Where a click on `parent`'s band of `key` goes: its children compared, `key` chosen as
    the metric and the history, so the lines behind the band are what the page draws."""
    return reverse("dashboard:compare") + "?" + urlencode({"parent": parent.run_id, "metric": key, "history": key})


def _child_lines(parent: Run, key: str) -> list[tuple[str, list]]:
    children = Run.objects.children_of(parent).active()
    names = dict(children.values_list("pk", "name")[:MAX_CHILD_LINES])
    found = selection_histories(children.filter(pk__in=list(names)), key, per_run=CHILD_LINE_POINTS)
    return [(names[pk] or str(pk), keep_extremes(series, CHILD_LINE_POINTS).points) for pk, series in found.items()]


def _bands_of(parent: Run, *, quartiles: bool, version: int | None) -> list:
    """The parent's bands for this `version` of its summaries: computed or read already by this
    process (its cache, no query), else those the worker kept (one query), else aggregated here
    (3 more). `version` is the newest summary's computed_at: a child's new metric value marks
    the parent stale and its refresh changes it, so a band is never served for older data than
    the summary beside it. The aggregation reads every point of every child (~0.35 s for a
    million, bench/charts.py); the worker keeps the bands once a sweep has settled, and a page
    polled while its sweep runs aggregates once per refresh, not once per poll."""
    cache_key = f"runtree:bands:{parent.pk}:{version}:{int(quartiles)}"
    if version is not None:
        found = cache.get(cache_key)
        if found is not None:
            return found
    bands = stored_bands(parent, version)
    if bands is None:
        keys = band_keys([parent])
        bands = parent_bands(parent, keys, quartiles=quartiles) if keys else []
    if version is not None:
        cache.set(cache_key, bands, CACHE_SECONDS)
    return bands


def parent_band_charts(parent: Run, query: QueryDict, *, keep: dict, version: int | None = None) -> BandCharts:
    """One band chart per stem of the metrics the parent's children log with history: as on
    the run page's history charts, `train_loss` and `val_loss` share one, each key a band in
    its own colour (the one its line has there). Queries: none when this process has the bands
    of this summary `version` already; else the ones the worker kept (1) and, when it kept
    none, the keys (1) and the bands (1, 2 for quartiles on SQLite); with `lines` 2 per metric
    for the children's lines."""
    options = BandOptions.from_query(query)
    charts = BandCharts(options, keep=keep)
    by_key = {band.key: band for band in _bands_of(parent, quartiles=options.mode == "quartiles", version=version)}
    for number, (title, keys) in enumerate(group_by_stem(by_key)):
        # One key: the band is the parent's children, and says so; several: each is its key.
        labels = [parent.name or parent.run_id] if len(keys) == 1 else keys
        bands = [
            (label, LINE_COLORS[position % len(LINE_COLORS)], by_key[key], children_link(parent, key))
            for position, (label, key) in enumerate(zip(labels, keys, strict=True))
        ]
        lines = None
        if options.lines:
            lines = {label: _child_lines(parent, key) for label, key in zip(labels, keys, strict=True)}
        y_title = " / ".join(keys)
        figure = band_figure(title, bands, mode=options.mode, child_lines=lines, y_title=y_title)
        charts.figures.append({"id": f"band-{number}", "figure": figure})
    return charts


def sweep_band_figure(parents: list[Run], key: str, *, mode: str = "std") -> dict | None:
    """Compare sweeps: `key` of each parent's children as one band in the parent's colour (a
    click on a band opens its children's comparison, children_link). The bands the worker kept
    for the parents' current summaries (1 query); for the others, their keys (1 query) and one
    aggregation each."""
    kept = current_bands(parents)
    missing = [parent for parent in parents if parent.pk not in kept]
    keys = band_keys(missing) if missing else None
    bands = []
    for position, parent in enumerate(parents):
        if parent.pk in kept:
            found = [band for band in kept[parent.pk] if band.key == key]
        else:
            found = parent_bands(parent, keys, only=[key], quartiles=mode == "quartiles")
        color = PARENT_COLORS[position % len(PARENT_COLORS)]
        bands += [(parent.name or parent.run_id, color, band, children_link(parent, key)) for band in found]
    return band_figure(key, bands, mode=mode) if bands else None
