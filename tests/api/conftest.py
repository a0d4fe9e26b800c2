import contextlib
import gc
import os
import socket
import threading

import mlflow
import pytest
from django.core.servers.basehttp import WSGIRequestHandler
from mlflow.tracking import fluent


@pytest.fixture(scope="session")
def client_connections_closed_at_the_end(live_server):
    """The client keeps its connections to the live server open, each held by a server thread
    with its own database connection; PostgreSQL would then refuse to drop the test database.
    So close the client's ends when the tests are done, and let those threads finish."""
    yield
    port = int(live_server.url.rsplit(":", 1)[1])
    tcp = (socket.AF_INET, socket.AF_INET6)
    for sock in [obj for obj in gc.get_objects() if type(obj) is socket.socket and obj.family in tcp]:
        with contextlib.suppress(OSError):  # closed already, or never connected
            if sock.getpeername()[1] == port:
                sock.close()
    for thread in threading.enumerate():
        if thread.name.endswith("(process_request_thread)"):
            thread.join(timeout=5)


@pytest.fixture
def tracking_uri(live_server, default_experiment, client_connections_closed_at_the_end, monkeypatch):
    """The mlflow client pointed at a live Runtree: no retries and a short timeout, so a
    failure is quick and visible; the client's module-level state is reset afterwards."""
    # The client keeps its connection alive; Django's test server then writes a response's
    # headers and body in two packets, and Nagle's algorithm holds the second until the client's
    # delayed ACK (~40 ms a request). TCP_NODELAY on the server side removes that wait.
    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    mlflow.set_tracking_uri(live_server.url)
    yield live_server.url
    while mlflow.active_run():
        mlflow.end_run()
    fluent._active_experiment_id = None
    # set_experiment exports the active experiment's id to the environment.
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.set_tracking_uri(None)
