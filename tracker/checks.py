"""System checks: refuse, at startup, a database Runtree cannot run on, with a message that says
what to do, rather than failing at the first write."""

from django.core import checks
from django.db import connections
from django.db.backends.sqlite3.base import Database as sqlite3

# The hot SQL (tracker/hot_sql.py) uses INSERT ... RETURNING, which SQLite has since 3.35.0.
MIN_SQLITE_VERSION = (3, 35, 0)


@checks.register(checks.Tags.compatibility)
def check_sqlite_version(app_configs=None, *, version_info: tuple | None = None, **kwargs) -> list[checks.Error]:
    """An error for each SQLite database when the SQLite library is older than 3.35."""
    version_info = tuple(version_info or sqlite3.sqlite_version_info)
    if version_info >= MIN_SQLITE_VERSION:
        return []
    found = ".".join(map(str, version_info))
    needed = ".".join(map(str, MIN_SQLITE_VERSION))
    return [
        checks.Error(
            f"The database '{alias}' is SQLite {found}; Runtree needs SQLite {needed} or later "
            "(its write path uses INSERT ... RETURNING).",
            hint="Use a Python built against a newer SQLite (python.org and Debian 12 builds are), "
            "or set DATABASE_URL to a PostgreSQL database.",
            id="runtree.E001",
        )
        for alias in connections
        if connections[alias].vendor == "sqlite"
    ]
