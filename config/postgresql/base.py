"""Django's PostgreSQL backend, with a health check that costs no round trip while it passes.

Runtree keeps connections open across requests and checks them before use (CONN_HEALTH_CHECKS),
so a connection the server dropped while idle (a restart, pg_terminate_backend, an idle timeout)
is replaced instead of failing a request. Django's check is a `SELECT 1` at the start of every
request: one round trip of the four to six in a tracking API write, paid thousands of times by a
sweep. A server that ends a connection sends its reason and closes the socket, so the socket of
a dropped idle connection is readable, and that of a healthy idle one is not. Only then is the
`SELECT 1` worth sending.
"""

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        if self.connection is None or self.connection.closed:
            return False
        try:
            readable, _, _ = select.select([self.connection.fileno()], [], [], 0)
        except (OSError, ValueError, base.Database.Error):
            return False
        # Something to read on an idle connection: the server's goodbye, or a notice. Ask.
        return super().is_usable() if readable else True
