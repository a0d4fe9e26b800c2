"""The Jinja2 environment of the one template Django's engine was too slow for: the run tree's
rows (templates/jinja2/partials/tree_rows.html, rendered by dashboard/templatetags/tree.py).

Django's engine resolves every `{{ }}` and `{% if %}` by walking nodes at runtime, a few
microseconds each: a filtered tree page's ~250 rows took ~32 ms at a million runs
(bench/million.py) with their values already worked out in Python. Jinja2 compiles a template
to Python code once. Every other template stays Django's.

Escaping is Django's, not MarkupSafe's, and happens in one place: `finalize`, which Jinja2 calls
on the value of every `{{ }}`, escapes it as Django does (`&#x27;`, `&quot;`), so a row reads byte
for byte as Django's engine wrote it, and a value already safe (SafeString, Markup) is written as
it is. Jinja2's own autoescape is off because it would only escape again what `finalize` has
already escaped: wrapping each value as Markup and checking it once more took 10.5 ms of the 250
rows of a filtered tree page at a million runs, against 4.0 without (same HTML; EPYC, medians
of 30). tests/dashboard/test_tree_page.py checks that each value a row shows is escaped.
"""

import html

from django.contrib.humanize.templatetags.humanize import intcomma
from jinja2 import Environment, StrictUndefined


def escape_as_django(value) -> str:
    """django.utils.html.conditional_escape, without its lazy-string wrapper: that check cost
    more than the escaping (~7,000 values a filtered tree page)."""
    if hasattr(value, "__html__"):
        return value
    return html.escape(str(value))


def environment(**options) -> Environment:
    # A name the template misspells is an error in tests, not an empty cell in production.
    options["undefined"] = StrictUndefined
    # `finalize` escapes every value (above); Django's backend asks for autoescape on top.
    options["autoescape"] = False
    # Django's engine writes a template's last newline; so does this one.
    env = Environment(**options, finalize=escape_as_django, keep_trailing_newline=True)
    env.filters["intcomma"] = intcomma
    return env
