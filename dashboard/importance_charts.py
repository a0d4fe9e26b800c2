"""Parameter importance on the pages: the stored fit (tracker/summaries/importance.py) as a chart, or the
reason there is none."""

from dataclasses import dataclass

from dashboard.charts import importance_figure
from tracker import tasks
from tracker.constants import is_system_metric
from tracker.models import ParamImportance
from tracker.summaries.importance import MIN_CHILDREN, REPEATS


@dataclass
class ImportanceChart:
    key: str
    id: str
    figure: dict | None = None
    reason: str = ""  # why there is no chart
    caption: str = ""  # what the chart's bars, colours and whiskers mean


def importance_chart(key: str, stored: ParamImportance | None, *, children: int, chart_id: str) -> ImportanceChart:
    """`children` is how many children have a value of `key`: under MIN_CHILDREN, no fit is made."""
    chart = ImportanceChart(key=key, id=chart_id)
    if is_system_metric(key):
        chart.reason = (
            f"{key} is a system metric (the machine's, not the model's): no param importance is fitted for it."
        )
    elif children < MIN_CHILDREN:
        chart.reason = (
            f"Param importance for {key} needs at least {MIN_CHILDREN} children with a value of it; "
            f"{children} {'has' if children == 1 else 'have'} one."
        )
    elif stored is None and tasks.in_process():
        chart.reason = (
            f"Param importance for {key} is fitted by the Celery worker, and none runs here (no "
            "CELERY_BROKER_URL): start Runtree with `make run`, or a worker."
        )
    elif stored is None:
        chart.reason = f"Param importance for {key} is being computed; it appears on the next load."
    elif not stored.params:
        chart.reason = f"No param varies among the children with {key}: nothing to rank."
    else:
        chart.figure = importance_figure(key, stored.params)
        chart.caption = (
            f"A random forest's permutation importance over {stored.children:,} children. Blue: a higher "
            f"param goes with a higher {key}; orange: with a lower one; grey: a categorical param. "
            f"Whiskers: the spread over {REPEATS} shuffles."
        )
    return chart
