"""The registry on tracking pages: the run page's "registered as" line (the tree's badge is
read in dashboard/templatetags/tree.py, with the rest of each row). A tag rather than view code,
so the run page stays one include away from it."""

from django import template

from registry import selectors

register = template.Library()


@register.simple_tag
def registrations_of(run):
    """The versions made from `run` (two queries: the versions with their models, their aliases)."""
    return selectors.registrations_of(run)
