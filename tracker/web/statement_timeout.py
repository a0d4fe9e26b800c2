"""A time limit on reads, so one expensive query cannot hold a database backend for minutes.

On PostgreSQL, a request that only reads (GET, HEAD, OPTIONS, and the read-only search POSTs)
runs with `statement_timeout = RUNTREE_STATEMENT_TIMEOUT_MS`; a write runs with the server's
default (none), so a large `log-batch`, a migration or an import is never cut halfway. A
statement cut by the limit is a 400 (tracker/web/faults.py): the same query would be cut again.

The setting is per database session and sessions outlive requests (CONN_MAX_AGE), so this
remembers what it last set on the session and sends `SET`/`RESET` only when a request needs
the other one: a server answering reads pays no extra round trip per request.
"""

from django.conf import settings
from django.db import connection
from django.db.backends.signals import connection_created

from tracker.web.auth import READ_ONLY_POSTS, SAFE_METHODS

# On the connection wrapper: the limit this session was last given (None: the server's default).
_SESSION_LIMIT = "runtree_statement_timeout_ms"


def is_read(request) -> bool:
    return request.method in SAFE_METHODS or request.path_info in READ_ONLY_POSTS


def _forget(sender, connection, **kwargs):
    # A new session starts with the server's default.
    setattr(connection, _SESSION_LIMIT, None)


connection_created.connect(_forget)


def use_statement_timeout(limit_ms: int | None) -> None:
    """Give this thread's PostgreSQL session `limit_ms` (None: the server's default)."""
    if connection.vendor != "postgresql" or getattr(connection, _SESSION_LIMIT, None) == limit_ms:
        return
    # A request starts outside any transaction. Inside one (only a test's, which wraps every
    # request in its transaction) a SET would be undone by the rollback behind our back: leave
    # the session alone there.
    if connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        if limit_ms is None:
            cursor.execute("RESET statement_timeout")
        else:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [str(limit_ms)])
    setattr(connection, _SESSION_LIMIT, limit_ms)


class ReadStatementTimeoutMiddleware:
    """Before the tracking API's shortcut, so the MLflow RPCs get the limit too."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request):
        if not request.path_info.startswith(self.static_prefix):
            limit = settings.RUNTREE_STATEMENT_TIMEOUT_MS if is_read(request) else None
            use_statement_timeout(limit or None)
        return self.get_response(request)
