"""Reading a running MLflow tracking server (or anything speaking its REST API)."""

from tracker.importing.client import ClientSource
from tracker.importing.source import SourceError, one_line, root_cause


class TrackingServerSource(ClientSource):
    """A running MLflow tracking server (or anything speaking its REST API, Runtree included)."""

    _PROBE_ENDPOINT = "/api/2.0/mlflow/experiments/search"
    # A server on MLflow's SQL store lists runs without the models they used: one get_run a run
    # reads them (a run's history already costs a call per metric key).
    lists_model_inputs = False
    # Each run costs a call per metric key and one get_run, each mostly waiting on the network
    # (see docs/benchmarks.md, Import from a tracking server).
    read_threads = 8

    def __init__(self, url: str):
        url = url.rstrip("/")
        self._probe(url)
        super().__init__(url, url)

    def _probe(self, url: str) -> None:
        """One quick request without retries: mlflow's client retries an unreachable server for
        minutes, and reads a web page that is not MLflow's as an obscure error."""
        # Not at the top: mlflow and SQLAlchemy are development requirements, imported only to read a source.
        from mlflow.tracking._tracking_service.utils import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        try:
            response = http_request(
                get_default_host_creds(url),
                self._PROBE_ENDPOINT,
                "GET",
                params={"max_results": 1},
                max_retries=0,
                timeout=10,
                raise_on_status=False,
            )
        except Exception as exc:  # mlflow wraps the HTTP library's many errors in several types
            raise SourceError(f"Cannot reach the tracking server at {url}: {one_line(root_cause(exc))}") from None
        if response.status_code in (401, 403):
            raise SourceError(
                f"The tracking server at {url} refused access (HTTP {response.status_code}): set "
                "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        is_experiment_list = isinstance(body, dict) and set(body) <= {"experiments", "next_page_token"}
        if response.status_code != 200 or not is_experiment_list:
            raise SourceError(
                f"{url} is not an MLflow tracking server: GET {self._PROBE_ENDPOINT} answered "
                f"HTTP {response.status_code}, not MLflow's list of experiments"
            )
