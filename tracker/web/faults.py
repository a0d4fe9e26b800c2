"""What a request gets when something fails: the database is away, or the server has a bug.

One rule each, for every view and middleware:
- The database unreachable (PostgreSQL restarted, a connection cut, SQLite locked past its
  busy timeout) is an outage, not a bug: HTTP 503 with MLflow's `TEMPORARILY_UNAVAILABLE`,
  which the mlflow client retries. Every write is one transaction, so a write cut short
  leaves nothing behind, and the retry stores it once.
- A statement the database refuses for its size or its time (PostgreSQL's statement timeout on
  reads, SQLite's fixed limits: "too many terms in compound SELECT", "at most 64 tables in a
  join", "Expression tree is too large") fails the same way every time it is sent: a 400 the
  client does not retry, never a 503 that it would retry for minutes.
- A write that PostgreSQL rolled back for a concurrent one (a deadlock, a serialization failure)
  is a 503 too, retried by the client, with a message that says so: nothing of it was stored.
- A request body that cannot be read to its end (the client went away mid-upload) is a 408.
- Any other unexpected error is a 500 without a stack trace: MLflow's error JSON on the APIs,
  a page in the product's look elsewhere (the trace goes to the log only).
- The APIs answer in JSON, never with an HTML error page.
"""

import logging
import sys

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, UnreadablePostError
from django.template import loader
from django.views import defaults

from tracker.web.json_errors import error_body

logger = logging.getLogger(__name__)

# What Django raises when it cannot talk to the database at all (as opposed to the database
# refusing a statement, which is an IntegrityError or DataError: a bug or a bad request).
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)

# The MLflow API (/api/2.0/mlflow/, /ajax-api/2.0/mlflow/), the native API (/api/v1/), and
# MLflow's downloads at the root, which scripts call with their API credentials.
API_PREFIXES = ("/api/", "/ajax-api/", "/get-artifact", "/model-versions/get-artifact")


# SQLite's fixed limits (sqlite.org/limits.html): the same statement fails the same way again.
_SQLITE_LIMIT_MESSAGES = (
    "too many terms in compound select",
    "at most 64 tables in a join",
    "expression tree is too large",
    "too many sql variables",
    "too many columns",
    "parser stack overflow",
    "like or glob pattern too complex",
    "string or blob too big",
    "too many arguments on function",
    "interrupted",  # the progress handler's cut (tracker/web/statement_timeout.py)
)
_PG_QUERY_CANCELED = "57014"
_PG_TRANSACTION_ROLLBACK_CLASS = "40"  # serialization failure, deadlock detected ...
_PG_PROGRAM_LIMIT_CLASS = "54"  # stack depth, too many columns or arguments ...


def client_limit_error(exception) -> str | None:
    """Why the database refused this statement, if it was for the statement's own size or time
    (so a retry fails again); None for anything else, an outage included."""
    if not isinstance(exception, OperationalError):
        return None
    cause = exception.__cause__
    pgcode = getattr(cause, "pgcode", None)
    if pgcode:
        if pgcode == _PG_QUERY_CANCELED and "statement timeout" in str(cause):
            limit = settings.RUNTREE_STATEMENT_TIMEOUT_MS
            return (
                f"The query took longer than the server's limit of {limit} ms "
                "(RUNTREE_STATEMENT_TIMEOUT_MS); narrow the filter, sort by fewer keys or ask for a smaller page."
            )
        if pgcode.startswith(_PG_PROGRAM_LIMIT_CLASS):
            return f"The query is too large for the database ({str(cause).strip()}); make it smaller."
        return None
    message = str(exception).lower()
    if any(limit in message for limit in _SQLITE_LIMIT_MESSAGES):
        return f"The query is too large for the database ({exception}); make it smaller."
    return None


def write_conflict(exception) -> bool:
    """PostgreSQL rolled the transaction back for a concurrent one: sent again, it succeeds."""
    pgcode = getattr(exception.__cause__, "pgcode", None) if isinstance(exception, OperationalError) else None
    return bool(pgcode) and pgcode.startswith(_PG_TRANSACTION_ROLLBACK_CLASS)


def query_too_large(request, message: str):
    """A 400 that says what to change: JSON on the APIs, a page elsewhere."""
    if is_api_request(request):
        return error_body("INVALID_PARAMETER_VALUE", message, status=400)
    return HttpResponse(loader.render_to_string("400.html", {"message": message}), status=400)


def body_not_received(request):
    message = "The request body did not arrive in time; send it again."
    if is_api_request(request):
        return error_body("BAD_REQUEST", message, status=408)
    return HttpResponse(loader.render_to_string("400.html", {"message": message}), status=408)


def is_api_request(request) -> bool:
    return request.path_info.startswith(API_PREFIXES)


_UNAVAILABLE = "The database is unavailable; try again shortly."
_CONFLICT = "The write was rolled back for a concurrent one, and nothing of it was stored; send it again."


def database_unavailable(request, message: str = _UNAVAILABLE):
    # No Retry-After header: urllib3 (under the mlflow client) would then wait exactly that
    # long between retries, instead of its growing backoff that rides out a longer outage.
    if is_api_request(request):
        return error_body("TEMPORARILY_UNAVAILABLE", message, status=503)
    # Rendered without the request: context processors (the user, for one) may need the database.
    return HttpResponse(loader.render_to_string("503.html", {"message": message}), status=503)


class DatabaseUnavailableMiddleware:
    """Turns a lost database in a view into a 503. (A loss inside a middleware, such as the
    token lookup, reaches `server_error` below, which applies the same rule.)

    Django drops the broken connection by itself: the failed query marks it as having had
    errors, and at the end of the request it is tested and closed (with CONN_HEALTH_CHECKS, a
    persistent connection that died while idle is also replaced before the next request uses
    it). So service resumes with the first request after the database is back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        too_large = client_limit_error(exception)
        if too_large:
            logger.warning("Query refused during %s %s: %s", request.method, request.path, exception)
            return query_too_large(request, too_large)
        if isinstance(exception, UnreadablePostError):
            # A client gone mid-upload is no server fault: one line in the log, not a traceback
            # (which Django's own handling of an exception writes, before server_error's 408).
            logger.info("Request body not received during %s %s: %s", request.method, request.path, exception)
            return body_not_received(request)
        return _database_fault(request, exception)


def _database_fault(request, exception):
    if write_conflict(exception):
        logger.info("Write conflict during %s %s: %s", request.method, request.path, exception)
        return database_unavailable(request, _CONFLICT)
    if isinstance(exception, DATABASE_UNAVAILABLE):
        logger.warning("Database unavailable during %s %s: %s", request.method, request.path, exception)
        return database_unavailable(request)
    return None


# --- error handlers (config/urls.py points Django's handler400/403/404/500 here) -----------------


def bad_request(request, exception):
    if is_api_request(request):
        return error_body("INVALID_PARAMETER_VALUE", "Bad request.", status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if is_api_request(request):
        return error_body("PERMISSION_DENIED", "Permission denied.", status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    if is_api_request(request):
        return error_body("ENDPOINT_NOT_FOUND", f"No API endpoint at {request.method} {request.path}.", status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """Django calls this inside its `except` block, so the exception is at hand."""
    exception = sys.exc_info()[1]
    too_large = client_limit_error(exception)
    if too_large:
        return query_too_large(request, too_large)
    if isinstance(exception, UnreadablePostError):
        return body_not_received(request)
    # Met in a middleware (the read limit's SET, the token lookup): answered as in a view.
    fault = _database_fault(request, exception)
    if fault is not None:
        return fault
    if is_api_request(request):
        return error_body("INTERNAL_ERROR", "Internal server error; the server log has the details.", status=500)
    # Django's own handler renders templates/500.html without a context, so it cannot fail
    # on the thing that just failed (the database, a context processor).
    return defaults.server_error(request)
