from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection

from tracker import checks
from tracker.checks import check_sqlite_version

needs_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="the check concerns SQLite databases only")


@needs_sqlite
def test_sqlite_older_than_3_35_is_refused_with_a_message_that_says_why():
    errors = check_sqlite_version(version_info=(3, 34, 1))

    assert [error.id for error in errors] == ["runtree.E001"]
    assert "SQLite 3.34.1" in errors[0].msg
    assert "3.35.0 or later" in errors[0].msg
    assert "RETURNING" in errors[0].msg
    assert "PostgreSQL" in errors[0].hint


@needs_sqlite
def test_manage_py_check_refuses_an_old_sqlite(monkeypatch):
    monkeypatch.setattr(checks, "sqlite3", SimpleNamespace(sqlite_version_info=(3, 31, 1)))

    with pytest.raises(SystemCheckError, match="Runtree needs SQLite 3.35.0 or later"):
        call_command("check")


def test_only_sqlite_databases_are_checked():
    errors = check_sqlite_version(version_info=(3, 34, 1))
    assert len(errors) == (1 if connection.vendor == "sqlite" else 0)


def test_a_recent_sqlite_passes_the_check():
    assert check_sqlite_version(version_info=(3, 35, 0)) == []
    assert check_sqlite_version() == []  # the SQLite this suite runs on
    call_command("check")  # raises SystemCheckError if any check fails
