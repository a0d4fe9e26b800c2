"""The registry on tracking pages: the run page's "registered as" line and the tree's badge.
Tags rather than view code, so the run page and the tree rows stay one include away from it."""

from django import template

from registry import selectors

register = template.Library()


@register.simple_tag
def registrations_of(run):
    """The versions made from `run` (two queries: the versions with their models, their aliases)."""
    return selectors.registrations_of(run)


@register.simple_tag
def registered_labels(rows):
    """{run pk: "name v1, other v3"} for the tree rows that have registered versions (one
    query per rendered batch of rows, none without rows)."""
    pks = [row.pk for row in rows if getattr(row, "pk", None)]
    return selectors.registered_labels(pks) if pks else {}


@register.filter
def label_for(labels, run_pk):
    return labels.get(run_pk, "")
