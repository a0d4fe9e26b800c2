"""The run tree's rows: `{% tree_rows %}` for Django templates and `render_rows` for the views
that answer with rows alone, both through the Jinja2 template templates/jinja2/partials/tree_rows.html.

A template costs microseconds per node: a row written as filter chains, `{% with %}` and an
include per row took ~0.6 ms in Django's engine, and a filtered tree page of ~350 rows spent
~200 ms of its ~370 ms rendering them (bench/million.py). Here each row's values are worked out
once in Python (an object a row), the template only places them, and Jinja2 (dashboard/jinja.py)
places them compiled. A value written several times in a row (the run id five times, the name
four) is escaped here, once: the template sees it is safe and writes it as it is; every other
value the template escapes.
"""

import math
from collections import defaultdict
from types import SimpleNamespace

from django import template
from django.template import engines
from django.utils.formats import localize
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from dashboard.templatetags.runtree import (
    cut_middle,
    cut_middle_together,
    duration,
    is_number,
    number,
    params_text,
    when,
)
from registry import selectors

register = template.Library()

ROWS_TEMPLATE = "partials/tree_rows.html"  # in templates/jinja2/


@register.simple_tag(takes_context=True)
def tree_rows(context, rows, colspan) -> SafeString:
    """The rows of a tree page or a run page's children table; `selected` (run ids ticked) and
    `state` (the tree's view, for the best-child column) come from the page's context."""
    state = context.get("state")
    return render_rows(rows, selected=context.get("selected", ()), best=state.best if state else "", colspan=colspan)


def render_rows(rows, *, selected, best: str, colspan: int) -> SafeString:
    """`rows` (Runs and MoreRows, as tracker.selectors.tree lays them out) as HTML table rows,
    with the registered versions' labels (one query, none without runs). `best` is the metric of
    the best-child column ("": no such column)."""
    pks = [row.pk for row in rows if getattr(row, "pk", None)]
    registered = selectors.registered_labels(pks) if pks else {}
    context = {"rows": row_views(rows, selected, registered), "best": best, "colspan": colspan}
    # The template escapes what it writes (dashboard/jinja.py).
    return mark_safe(engines["jinja2"].get_template(ROWS_TEMPLATE).render(context))


# The longest description a row's tooltip shows.
NOTE_TITLE_CHARS = 400


def row_views(rows, selected, registered: dict[int, str]) -> list:
    """`rows` as the template reads them: a MoreRow as it is, a Run as an object of the values its
    row shows; each name cut to keep in sight where it differs from its siblings' among `rows`."""
    siblings = defaultdict(list)
    for row in rows:
        if not getattr(row, "is_more", False):
            siblings[row.parent_run_id].append(row)
    name_parts = {}
    for runs in siblings.values():
        labels = [run.name or run.run_id for run in runs]
        name_parts.update(zip((run.pk for run in runs), cut_middle_together(labels), strict=True))
    return [
        row if getattr(row, "is_more", False) else run_view(row, selected, registered, name_parts[row.pk])
        for row in rows
    ]


def run_view(run, selected, registered: dict[int, str], name_parts: str) -> SimpleNamespace:
    """One run's row: its hooks (run_id, level, parent, hidden), its classes and labels, and the
    text of each cell."""
    match = getattr(run, "is_match", None)  # None: no filter applied
    classes = ["run-row"]
    if run.child_count:
        classes.append("has-children")
    if match:
        classes.append("is-match")
    elif match is False:
        classes.append("is-context")
    if run.is_deleted:
        classes.append("is-deleted")
    note = getattr(run, "note", "")
    return SimpleNamespace(
        is_more=False,
        run_id=escape(run.run_id),
        name=escape(run.name),
        name_parts=name_parts,
        level=str(run.level),
        parent_run_id=run.parent_run_id,
        hidden=run.hidden,
        classes=" ".join(classes),
        match=match,
        checked=run.run_id in selected,
        child_count=run.child_count,
        count_text=str(run.child_count),
        children_text=f"{run.child_count} child run{'' if run.child_count == 1 else 's'}",
        is_open="true" if run.is_open else "false",
        children_loaded=run.children_loaded,
        note=Truncator(note).chars(NOTE_TITLE_CHARS) if note else "",
        parent_missing=run.parent_missing,
        is_deleted=run.is_deleted,
        registered=registered.get(run.pk, ""),
        status=str(run.status).lower(),
        started=when(run.start_time) if run.start_time else None,
        duration=duration(run.duration_ms),
        cells=[cell_view(column, value) for column, value in run.cells],
        best=best_view(getattr(run, "best", None)),
        summary_stale=run.summary_stale,
    )


def best_view(summary) -> SimpleNamespace | None:
    """The best-child cell of a parent's RunSummary (tracker.selectors.tree.attach_summaries):
    the goal, the best value (its full form for the title), and the best run with its params."""
    if summary is None:
        return None
    best_run = summary.best_run
    return SimpleNamespace(
        goal=summary.goal,
        value_title=plain_text(summary.best_value),
        value_text=number(summary.best_value) or "NaN",
        run_id=best_run.run_id if best_run else "",
        run_label=(best_run.name or best_run.run_id) if best_run else "",
        run_parts=cut_middle(best_run.name or best_run.run_id) if best_run else "",
        params_text=params_text(summary.best_params) if summary.best_params else "",
    )


def cell_view(column, value) -> tuple[str, str | None, str | None]:
    """(class, title, text) of a param, metric or tag cell; title and text are None when the run
    lacks the key."""
    numeric = is_number(value)
    css = "num" if column.kind == "metrics" or numeric else "text"
    if value is None:
        return css, None, None
    return css, plain_text(value), number(value) if numeric else str(value)


def plain_text(value) -> str:
    """A value as `{{ value }}` writes it (the full value, for a title), without the engine's
    per-value localisation: a float's repr is what it writes, except in exponent form (1e-05),
    which it writes out in full (0.00001)."""
    if isinstance(value, float) and math.isfinite(value) and "e" in repr(value):
        return localize(value)
    return str(value)
