"""Responses that carry bytes a user uploaded (artifacts), as a download or shown on a page: the
one rule that keeps them from running on Runtree's origin, whatever they contain.

- `X-Content-Type-Options: nosniff`: the browser takes the type sent (inline ones come from a
  short list of extensions, tracker/selectors/artifacts.py) and never guesses HTML from the bytes.
- A Content-Security-Policy whose `sandbox` has no `allow-*` token: an uploaded HTML or SVG file,
  even opened on its own, is a document of a unique origin that runs no script, submits no form,
  opens no popup and cannot navigate the page around it; `default-src 'none'` lets it load
  nothing (shown inline: its own images and inline styles, as sklearn's estimator.html needs);
  `base-uri` and `form-action`, which default-src does not cover, are shut too.
- `Cross-Origin-Resource-Policy: same-origin`: no other site embeds them.
- A download's Content-Type is its file's guessed type only when that type can never run:
  anything else (`x.js` guessed as text/javascript, HTML, SVG, XML ...) goes out as
  application/octet-stream. With nosniff, a `<script src>` of an uploaded file, which the
  pages' own policy (script-src 'self') would allow, is then refused by the browser.

The policy is set on the response, so django-csp's site-wide policy (config/settings.py), which
fills only a response that has none, leaves it alone.
"""

from django.http import HttpResponseBase

_SHUT = "sandbox; default-src 'none'; base-uri 'none'; form-action 'none'"
# A download is never framed, not even by Runtree.
DOWNLOAD_POLICY = f"{_SHUT}; frame-ancestors 'none'"
# Shown on the run page: an <img>, or an <iframe sandbox> of Runtree's own pages.
INLINE_POLICY = f"{_SHUT}; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


# Types a browser shows or saves but never runs as a script, a page or a stylesheet.
_INERT_DOWNLOAD_TYPES = frozenset(
    {"text/plain", "text/csv", "application/json", "image/png", "image/jpeg", "image/gif", "image/webp"}
)


def sandboxed(response: HttpResponseBase, *, inline: bool = False) -> HttpResponseBase:
    """`response`, serving uploaded bytes, with the headers above."""
    if not inline and response["Content-Type"].partition(";")[0].strip() not in _INERT_DOWNLOAD_TYPES:
        response["Content-Type"] = "application/octet-stream"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = INLINE_POLICY if inline else DOWNLOAD_POLICY
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
