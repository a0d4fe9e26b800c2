import mlflow
import pytest
from mlflow import MlflowClient

# The mlflow client against a live Runtree, as the API tests use it.
from tests.api.conftest import client_connections_closed_at_the_end, tracking_uri  # noqa: F401


@pytest.fixture
def mlflow_client(tracking_uri):  # noqa: F811 (the fixture imported above)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@pytest.fixture
def logged_run(tracking_uri):  # noqa: F811
    """A finished run with a metric, to register versions from (by a source URI, no files)."""
    with mlflow.start_run(run_name="trained") as run:
        mlflow.log_metric("rmse", 0.5)
    return run.info


# Chromium through Playwright, as the browser tests drive it.
from tests.browser.conftest import page  # noqa: E402, F401
