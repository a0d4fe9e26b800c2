"""Settings come from the environment; a malformed value stops start-up with a clear message."""

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import env


def test_a_malformed_boolean_names_the_variable(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe' is not a boolean"):
        env.env_bool("DEBUG", False)


def test_an_unsupported_database_url_is_refused(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/x")
    with pytest.raises(ImproperlyConfigured, match="sqlite:// and postgres://"):
        env.env_database("DATABASE_URL", "sqlite:///x.sqlite3")


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout():
    config = env.env_database("UNSET_DATABASE_URL_FOR_TEST", "sqlite:///x.sqlite3")
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["timeout"] >= 5


def test_the_server_refuses_to_start_on_a_bad_value():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={"PATH": "/usr/bin:/bin", "DEBUG": "perhaps", "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "DEBUG='perhaps' is not a boolean" in result.stderr


def test_s3_artifact_storage_needs_a_bucket():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={"PATH": "/usr/bin:/bin", "RUNTREE_ARTIFACT_STORAGE": "s3", "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "RUNTREE_ARTIFACT_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME" in result.stderr


def test_s3_artifact_storage_is_configured_from_the_environment():
    code = "from django.conf import settings; print(settings.STORAGES['artifacts'])"
    environment = {
        "PATH": "/usr/bin:/bin",
        "RUNTREE_ARTIFACT_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": "runs",
        "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "storages.backends.s3.S3Storage" in result.stdout
    assert "'bucket_name': 'runs'" in result.stdout and "'addressing_style': 'path'" in result.stdout
