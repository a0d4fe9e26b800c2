"""The compare page's state, read from the URL, and its table (shown and exported as CSV),
made from tracker.selectors.compare's Comparison. Everything a viewer chooses lives in the query string,
so a comparison can be shared; a choice that does not fit the runs falls back to a default."""

import math
from dataclasses import dataclass, replace
from html import escape

from django.http import QueryDict
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from dashboard.state import parse_int
from dashboard.templatetags.runtree import cut_middle_together, duration, number
from tracker.constants import is_system_metric
from tracker.selectors.compare import ComparedRun, Comparison
from tracker.selectors.export import csv_number, spreadsheet_safe
from tracker.series import series_key


def _ids(values: list[str]) -> list[str]:
    """`a,b` or the parameter repeated (as a form of `run` checkboxes submits it) → ids in order."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


# Parents compared as sweeps at most (each a band in its own colour, and a query of its own).
MAX_SWEEPS = 10


@dataclass(frozen=True)
class CompareState:
    run_ids: tuple[str, ...]
    parent: str
    metric: str  # colours the parallel coordinates; the scatter's y; the bars
    x: str  # the scatter's x: "params.<key>" or "metrics.<key>"
    history: str  # the metric drawn by step
    diff_only: bool
    csv: bool
    table_page: int = 1  # the table shows TABLE_ROWS runs a page; the charts and CSV show them all
    parents: tuple[str, ...] = ()  # "compare sweeps": each parent's children as one band
    band: str = "std"
    log_x: bool = False  # the scatter's x
    log_y: bool = False  # the scatter's, the bars' and the history's y
    # The history's x: step, relative or wall time (dashboard.charts.X_MODES); "" until resolved:
    # by step, or by time for a metric logged in a loop without a step.
    xaxis: str = ""
    smooth: str = ""  # the history's EMA weight, as given (dashboard.charts.HistoryOptions checks it)

    @classmethod
    def from_query(cls, query: QueryDict) -> "CompareState":
        return cls(
            run_ids=tuple(_ids(query.getlist("runs") + query.getlist("run"))),
            parent=query.get("parent", "").strip(),
            metric=query.get("metric", ""),
            x=query.get("x", ""),
            history=query.get("history", ""),
            diff_only=query.get("diff") in ("1", "true", "on"),
            csv=query.get("format") == "csv",
            table_page=parse_int(query.get("table_page"), 1, 1, 10**6),
            parents=tuple(dict.fromkeys(_ids(query.getlist("parents"))))[:MAX_SWEEPS],
            band=query.get("band", "std"),
            log_x=query.get("logx") == "1",
            log_y=query.get("logy") == "1",
            xaxis=query.get("xaxis", ""),
            smooth=query.get("smooth", ""),
        )

    def resolved(self, comparison: Comparison) -> "CompareState":
        """This state with every chart choice one these runs can draw."""
        metrics, params = comparison.metric_keys, comparison.param_keys
        metric = _choice(self.metric, metrics) or _default_metric(comparison)
        x_choices = [f"params.{key}" for key in params] + [f"metrics.{key}" for key in metrics if key != metric]
        varying = [f"params.{key}" for key in comparison.differing_param_keys()]
        x = self.x if self.x in x_choices else next(iter(varying + x_choices), "")
        history = _choice(self.history, comparison.history_keys)
        if not history:
            history = metric if metric in comparison.history_keys else next(iter(comparison.history_keys), "")
        xaxis = self.xaxis or ("relative" if history in comparison.stepless_keys else "step")
        return replace(self, metric=metric, x=x, history=history, xaxis=xaxis)

    @property
    def selection_query(self) -> dict[str, str]:
        """The query that names the selection, for the form's hidden fields and the CSV link."""
        if self.parents:
            return {"parents": ",".join(self.parents)}
        return {"parent": self.parent} if self.parent else {"runs": ",".join(self.run_ids)}

    @property
    def history_query(self) -> dict[str, str]:
        extra = {"logy": "1" if self.log_y else "", "xaxis": "" if self.xaxis == "step" else self.xaxis}
        extra["smooth"] = self.smooth if self.smooth not in ("", "0") else ""
        return {**self.selection_query, "history": self.history, **{k: v for k, v in extra.items() if v}}


def _choice(asked: str, names: list[str]) -> str:
    """`asked` when it is one of `names`; for a key these runs logged on several datasets (a
    column per dataset), its first dataset's series; else ""."""
    if asked in names:
        return asked
    return next((name for name in names if series_key(name) == asked), "")


def _default_metric(comparison: Comparison) -> str:
    # A metric with a goal set is one the experiment's owner cares about.
    with_goal = [name for name in comparison.metric_keys if series_key(name) in comparison.goals]
    return next(iter(with_goal + comparison.metric_keys), "")


@dataclass
class Cell:
    text: str
    css: str = ""
    title: str = ""


@dataclass
class Row:
    run: ComparedRun
    url: str
    duration: str
    cells: list[Cell]
    name_parts: str  # the run's label as cut_middle cuts it among the table's others
    show_parent: bool = False
    color: str = ""  # the run's colour on the page's charts (dashboard.charts.run_colors)

    @property
    def html(self) -> SafeString:
        """The row's <tr>, built here rather than in the template: a 1,000-run table is 10,000
        cells, and the template language (or format_html, 15 times slower than this) took most
        of the page's server time on them (bench/compare_page.py). Every value interpolated
        below passes through escape(), quotes included, before the row is marked safe."""
        run = self.run
        parent = ""
        if self.show_parent and run.parent_name:
            parent = f'<span class="parent" title="parent: {escape(run.parent_name)}">{escape(run.parent_name)}</span>'
        cells = "".join(
            f'<td class="{escape(cell.css)}" title="{escape(cell.title)}">{escape(cell.text)}</td>'
            for cell in self.cells
        )
        label, status = escape(run.label), escape(run.status.lower())
        swatch = f'<span class="swatch" style="background:{escape(self.color)}"></span>' if self.color else ""
        return mark_safe(  # every part escaped above
            f'<tr data-run-id="{escape(run.run_id)}"><th scope="row" class="name">{swatch}'
            f'<a class="cut-middle" href="{escape(self.url)}" title="{label}" aria-label="{label}">'
            f"{self.name_parts}</a>{parent}</th>"
            f'<td><span class="status status-{status}">{status}</span></td>'
            f'<td class="num">{escape(self.duration)}</td>{cells}</tr>'
        )


# Rows of the table a page: 10,000 rows were 8 MB of HTML and half of the page's second
# (bench/compare_page.py); nobody reads 10,000 rows, the charts show every run.
TABLE_ROWS = 500


@dataclass
class CompareTable:
    param_keys: list[str]
    metric_keys: list[str]
    varying: set[str]  # params whose value differs between runs: highlighted
    hidden_params: int  # params left out by "differences only"
    goals: dict[str, str]
    rows: list[Row]
    show_parents: bool  # each row names its parent (not under "compare children": the heading does)
    page: int = 1
    pages: int = 1
    first: int = 0  # the rows' places among all runs, from 1 (0: no rows)
    last: int = 0
    total: int = 0


def compare_table(
    comparison: Comparison,
    *,
    diff_only: bool,
    show_parents: bool = True,
    page: int = 1,
    colors: dict[str, str] | None = None,
) -> CompareTable:
    """Page `page` of the table (TABLE_ROWS runs), rows of formatted cells: made here, not in the
    template, because a 500-run page is 5,000 cells and the template language would spend most
    of the page's time on them. What differs and what is best is worked out over all the runs."""
    varying = set(comparison.differing_param_keys())
    param_keys = [key for key in comparison.param_keys if key in varying] if diff_only else comparison.param_keys
    metric_keys = comparison.metric_keys
    # The machine's metrics (system/...) have no best: a busy CPU is no better than an idle one.
    goals = {key: "" if is_system_metric(key) else comparison.goal(key) for key in metric_keys}
    best = {key: comparison.best_value(key) if goals[key] else None for key in metric_keys}
    # One reverse() for the page, not one per row.
    url_pattern = reverse("dashboard:run", args=["RUN_ID"])
    total = len(comparison.runs)
    pages = max(1, math.ceil(total / TABLE_ROWS))
    page = min(page, pages)
    shown = comparison.runs[(page - 1) * TABLE_ROWS : page * TABLE_ROWS]
    rows = []
    name_parts = cut_middle_together([run.label for run in shown])
    for run, parts in zip(shown, name_parts, strict=True):
        cells = [_param_cell(run.params.get(key), key in varying) for key in param_keys]
        cells += [_metric_cell(run.metrics.get(key), best[key], goals[key]) for key in metric_keys]
        url = url_pattern.replace("RUN_ID", run.run_id)
        color = (colors or {}).get(run.run_id, "")
        rows.append(Row(run, url, duration(run.duration_ms), cells, parts, show_parent=show_parents, color=color))
    return CompareTable(
        param_keys=param_keys,
        metric_keys=metric_keys,
        varying=varying,
        hidden_params=len(comparison.param_keys) - len(param_keys),
        goals=goals,
        rows=rows,
        show_parents=show_parents,
        page=page,
        pages=pages,
        first=(page - 1) * TABLE_ROWS + 1 if shown else 0,
        last=(page - 1) * TABLE_ROWS + len(shown),
        total=total,
    )


def _param_cell(value: str | None, varies: bool) -> Cell:
    if value is None:
        return Cell("·", "none", "not logged")
    return Cell(value if len(value) <= 40 else value[:39] + "…", "text varies" if varies else "text", value)


def _metric_cell(value: float | None, best: float | None, goal: str) -> Cell:
    if value is None:
        return Cell("·", "num none", "not logged")
    if math.isnan(value):
        return Cell("NaN", "num nan", "NaN")
    if value == best:
        return Cell(number(value), "num best", f"{value!r}: the best ({goal})")
    return Cell(number(value), "num", repr(value))


def csv_rows(comparison: Comparison, *, diff_only: bool):
    """The table as CSV rows, header first: raw values (full precision, durations in ms), the
    same runs and columns as the page shows."""
    varying = set(comparison.differing_param_keys())
    param_keys = [key for key in comparison.param_keys if key in varying] if diff_only else comparison.param_keys
    yield [
        "run_id",
        "run_name",
        "parent_run_id",
        "parent_name",
        "status",
        "duration_ms",
        *(f"params.{key}" for key in param_keys),
        *(f"metrics.{key}" for key in comparison.metric_keys),
    ]
    for run in comparison.runs:
        yield [
            run.run_id,
            spreadsheet_safe(run.name),
            run.parent_run_id,
            spreadsheet_safe(run.parent_name),
            run.status,
            "" if run.duration_ms is None else run.duration_ms,
            *(spreadsheet_safe(run.params.get(key, "")) for key in param_keys),
            *(csv_number(run.metrics.get(key)) for key in comparison.metric_keys),
        ]
