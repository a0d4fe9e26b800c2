"""The run page's read: one run with its lineage, values, children and summary (its charts read
their histories through tracker/selectors/histories.py)."""

from dataclasses import dataclass

from django.core.paginator import Paginator

from tracker.constants import is_system_metric
from tracker.models import LatestMetric, Param, Run, RunSummary, RunTag
from tracker.selectors.tree import CHILD_METRIC_COLUMNS, Order, TableColumn, annotated_page, tree_rows
from tracker.summaries.reads import summaries_for
from tracker.values import read_value

# Past this many rows a params or metrics table gets a filter box and scrolls inside its card:
# a config logged whole can be hundreds of params, and a run has been seen with 2,500 metrics
# (a 75,000-pixel page).
LONG_TABLE_ROWS = 20


@dataclass
class RunOverview:
    run: Run  # with `child_count`; experiment selected
    ancestors: list[Run]
    params: list[Param]
    metrics: list[LatestMetric]  # the model's, by key
    system_metrics: list[LatestMetric]  # the machine's (system/...), by key: listed apart
    tags: list[RunTag]
    children: object  # django.core.paginator.Page of the direct children
    child_columns: tuple[TableColumn, ...]  # metric columns for the children, their `cells` set
    summaries: list[RunSummary]  # per metric key, best run attached; [] for a run without children

    @property
    def params_are_long(self) -> bool:
        return len(self.params) > LONG_TABLE_ROWS

    @property
    def metrics_are_long(self) -> bool:
        return len(self.metrics) + len(self.system_metrics) > LONG_TABLE_ROWS


def run_overview(run_id: str, *, children_page: int | str = 1, per_page: int = 20, order: Order) -> RunOverview:
    """Everything the run page shows but its charts: 8 queries (run, ancestors, params, metrics,
    tags, children count and page, the children's metrics), and a 9th for the summaries of a
    run with children, whatever the run's size. The histories are the charts' own reads
    (tracker/selectors/histories.py): a run of a million steps is not read point by point."""
    run = Run.objects.with_child_count().select_related("experiment").get(run_id=run_id)
    metrics = list(LatestMetric.objects.filter(run=run).order_by("key"))
    system_metrics = [metric for metric in metrics if is_system_metric(metric.key)]
    page = Paginator(Run.objects.children_of(run).active().order_by(*order()), per_page).get_page(children_page)
    page.object_list = annotated_page(page.object_list, order, lambda q: tree_rows(q, show_deleted=False))
    for child in page.object_list:
        child.level, child.is_open, child.hidden, child.children_loaded = 0, False, False, False
    child_columns = _child_metric_columns(page.object_list)
    return RunOverview(
        run=run,
        ancestors=list(Run.objects.ancestors_of(run).only("run_id", "name", "depth", "path")),
        params=list(Param.objects.filter(run=run).order_by("key")),
        metrics=[metric for metric in metrics if not is_system_metric(metric.key)],
        system_metrics=system_metrics,
        tags=list(RunTag.objects.filter(run=run).order_by("key")),
        children=page,
        child_columns=child_columns,
        summaries=summaries_for([run.pk])[run.pk] if run.child_count else [],
    )


def _child_metric_columns(children: list[Run], limit: int = CHILD_METRIC_COLUMNS) -> tuple[TableColumn, ...]:
    """The first `limit` keys of the model's metrics the listed children logged (not the
    machine's), as columns, with each child's `cells` set from the same one query."""
    rows = list(LatestMetric.objects.filter(run__in=[c.pk for c in children]).values_list("run", "key", "value"))
    keys = sorted({key for _, key, _ in rows if not is_system_metric(key)})
    columns = tuple(TableColumn("metrics", key) for key in keys[:limit])
    found = {(run_pk, key): read_value(value) for run_pk, key, value in rows}
    for child in children:
        child.cells = [(column, found.get((child.pk, column.key))) for column in columns]
    return columns
