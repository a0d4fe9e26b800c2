"""Band charts: a parent's children aggregated by step (the run page) and several parents side
by side ("compare sweeps"). Reads from tracker/selectors/bands.py, figures from dashboard/charts.py."""

from dataclasses import dataclass, field

from django.http import QueryDict
from django.urls import reverse

from dashboard.charts import BAND_MODES, PARENT_COLORS, band_figure
from dashboard.downsample import keep_extremes
from tracker.models import Run
from tracker.selectors.bands import band_keys, parent_bands
from tracker.selectors.histories import selection_histories

# Each child as a thin line: this many points each at most (a band of 1,000 children is 200,000).
CHILD_LINE_POINTS = 200
# Children drawn as lines at most; the band itself counts them all.
MAX_CHILD_LINES = 1000


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


def _child_lines(parent: Run, key: str) -> list[tuple[str, list]]:
    children = Run.objects.children_of(parent).active()
    names = dict(children.values_list("pk", "name")[:MAX_CHILD_LINES])
    found = selection_histories(children.filter(pk__in=list(names)), key, per_run=CHILD_LINE_POINTS)
    return [(names[pk] or str(pk), keep_extremes(series, CHILD_LINE_POINTS).points) for pk, series in found.items()]


def parent_band_charts(parent: Run, query: QueryDict, *, keep: dict) -> BandCharts:
    """One band chart per metric the parent's children log with history. Queries: the keys (1),
    the bands (1, 2 for quartiles on SQLite), and with `lines` 2 per metric for the children's lines."""
    options = BandOptions.from_query(query)
    charts = BandCharts(options, keep=keep)
    keys = band_keys([parent])
    if not keys:
        return charts
    color, label = PARENT_COLORS[0], parent.name or parent.run_id
    link = reverse("dashboard:compare") + f"?parent={parent.run_id}"
    for number, band in enumerate(parent_bands(parent, keys, quartiles=options.mode == "quartiles")):
        lines = {label: _child_lines(parent, band.key)} if options.lines else None
        figure = band_figure(band.key, [(label, color, band, link)], mode=options.mode, child_lines=lines)
        charts.figures.append({"id": f"band-{number}", "figure": figure})
    return charts


def sweep_band_figure(parents: list[Run], key: str, *, mode: str = "std") -> dict | None:
    """Compare sweeps: `key` of each parent's children as one band in the parent's colour (a
    click on a band opens its children). Two queries, plus one per parent."""
    keys = band_keys(parents)
    if key not in keys.ranges:
        return None
    bands = []
    for position, parent in enumerate(parents):
        for band in parent_bands(parent, keys, only=[key], quartiles=mode == "quartiles"):
            link = reverse("dashboard:compare") + f"?parent={parent.run_id}"
            bands.append((parent.name or parent.run_id, PARENT_COLORS[position % len(PARENT_COLORS)], band, link))
    return band_figure(key, bands, mode=mode) if bands else None
