"""The tree rows' values: what each row of a run tree shows, worked out once per row in Python
for templates/partials/tree_rows.html.

Django's template engine costs microseconds per node: a row written as filter chains, `{% with %}`
and an include per row took ~0.6 ms, and a filtered tree page of ~350 rows spent ~200 ms of its
~370 ms rendering them (bench/million.py). Here each row becomes a dict of ready values (a dict:
the engine tries `row[key]` before an attribute, so a dict is its cheapest lookup), and the
template only places them. The markup stays in the template. A value written several times in a
row (the run id five times, the name four) is escaped here, once: the template sees it is safe
and writes it as it is; every other value the template escapes as usual.
"""

import math

from django import template
from django.utils.formats import localize
from django.utils.html import escape
from django.utils.text import Truncator

from dashboard.templatetags.runtree import duration, is_number, number, when
from registry import selectors

register = template.Library()


@register.simple_tag
def tree_row_views(rows, selected):
    """`rows` as templates/partials/tree_rows.html reads them, with the registered versions'
    labels (one query per rendered batch of rows, none without runs)."""
    pks = [row.pk for row in rows if getattr(row, "pk", None)]
    registered = selectors.registered_labels(pks) if pks else {}
    return row_views(rows, selected, registered)


# The longest description a row's tooltip shows.
NOTE_TITLE_CHARS = 400


def row_views(rows, selected, registered: dict[int, str]) -> list:
    """`rows` (Runs and MoreRows, as tracker.selectors.tree lays them out) as the template reads
    them: a MoreRow as it is, a Run as a dict of the values its row shows."""
    return [row if getattr(row, "is_more", False) else run_view(row, selected, registered) for row in rows]


def run_view(run, selected, registered: dict[int, str]) -> dict:
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
    return {
        "is_more": False,  # asked of every row: a key the dict lacks costs the engine a dir()
        "run_id": escape(run.run_id),
        "name": escape(run.name),
        "level": str(run.level),
        "parent_run_id": run.parent_run_id,
        "hidden": run.hidden,
        "classes": " ".join(classes),
        "match": match,
        "checked": run.run_id in selected,
        "child_count": run.child_count,
        "count_text": str(run.child_count),  # an int written by the engine is localised: slow
        "children_text": f"{run.child_count} child run{'' if run.child_count == 1 else 's'}",
        "is_open": "true" if run.is_open else "false",
        "children_loaded": run.children_loaded,
        "note": Truncator(note).chars(NOTE_TITLE_CHARS) if note else "",
        "parent_missing": run.parent_missing,
        "is_deleted": run.is_deleted,
        "registered": registered.get(run.pk, ""),
        "status": str(run.status).lower(),
        "started": when(run.start_time) if run.start_time else None,
        "duration": duration(run.duration_ms),
        "cells": [cell_view(column, value) for column, value in run.cells],
        "best": getattr(run, "best", None),
        "summary_stale": run.summary_stale,
    }


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
