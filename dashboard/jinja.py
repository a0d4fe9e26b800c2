"""The Jinja2 environment of the one template Django's engine was too slow for: the run tree's
rows (templates/jinja2/partials/tree_rows.html, rendered by dashboard/templatetags/tree.py).

Django's engine resolves every `{{ }}` and `{% if %}` by walking nodes at runtime, a few
microseconds each: a filtered tree page's ~250 rows took ~32 ms at a million runs
(bench/million.py) with their values already worked out in Python. Jinja2 compiles a template
to Python code once. Every other template stays Django's.

Escaping is Django's, not MarkupSafe's: `finalize` escapes each value as Django does (`&#x27;`,
`&quot;`), so a row reads byte for byte as Django's engine wrote it, and a value already safe
(SafeString, Markup) is written as it is.
"""

import html

from django.contrib.humanize.templatetags.humanize import intcomma
from jinja2 import Environment, StrictUndefined
from markupsafe import Markup


def escape_as_django(value):
    """django.utils.html.conditional_escape, without its lazy-string wrapper: that check cost
    more than the escaping (~7,000 values a filtered tree page)."""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value)))


def environment(**options) -> Environment:
    # A name the template misspells is an error in tests, not an empty cell in production.
    options["undefined"] = StrictUndefined
    # Django's engine writes a template's last newline; so does this one.
    env = Environment(**options, finalize=escape_as_django, keep_trailing_newline=True)
    env.filters["intcomma"] = intcomma
    return env
