"""Requests no view can serve, refused before any view or middleware reads them.

A NUL character in the path or the query string: PostgreSQL refuses to compare a text column
with one ("A string literal cannot contain NUL"), so `/runs/%00/` or `?q=%00` would reach the
database and fail there as a 500. No run id, filter or name may contain one (the APIs refuse
it in values already), so the whole request is a 400.
"""

from tracker.web.faults import query_too_large

_MESSAGE = "The URL contains a NUL character (%00), which no name, id or filter may contain."


class RequestGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path_info or "%00" in request.META.get("QUERY_STRING", ""):
            return query_too_large(request, _MESSAGE)
        return self.get_response(request)
