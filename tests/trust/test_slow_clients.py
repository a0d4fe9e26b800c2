"""Slow clients cannot starve the server: granian as production runs it (tests/trust/conftest.py
Server, the Procfile's shape), clients that declare a body and stop sending it, and a probe that
must still be answered at once while the stalled ones are cut."""

import json
import os
import socket
import time

import pytest
import requests

from tests.trust.conftest import ON_POSTGRESQL, Server, migrated_sqlite_url, postgresql_url_of_test_database

BODY_TIMEOUT_SECONDS = 2
THREADS = 2
PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"


MIB = 1024 * 1024


@pytest.fixture
def server(transactional_db, default_experiment, tmp_path):
    url = postgresql_url_of_test_database() if ON_POSTGRESQL else migrated_sqlite_url(tmp_path)
    env = {
        "RUNTREE_CLIENT_TIMEOUT_SECONDS": str(BODY_TIMEOUT_SECONDS),
        "RUNTREE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
    }
    server = Server(url, workers=1, threads=THREADS, env=env)
    server.start()
    yield server
    server.stop()


def stalled_request(server: Server, path: str, *, declared: int, sent: bytes, method="POST") -> socket.socket:
    """A connection that sends its headers and the first bytes of a body, then nothing more."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=BODY_TIMEOUT_SECONDS * 4)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def assert_probe_answers_at_once(server: Server) -> float:
    started = time.monotonic()
    probe = requests.get(server.url + PROBE, timeout=BODY_TIMEOUT_SECONDS * 4)
    probe_seconds = time.monotonic() - started
    assert probe.status_code == 200
    assert probe_seconds < 1.0, f"the probe waited {probe_seconds:.1f} s behind the stalled bodies"
    return started


def assert_cut_with_408(answer: bytes):
    """A 408 in MLflow's JSON, then the connection closed (or closed with no answer)."""
    if answer:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), head
        assert json.loads(body)["error_code"] == "BAD_REQUEST"


def answer_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing (b"" if it only closed), or a failure if it still
    holds the connection open after `seconds`."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server still held a stalled connection after {seconds} s (sent {received[:80]!r})")
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return received


def test_stalled_bodies_are_cut_and_a_probe_still_answers(server):
    # More stalled bodies than the worker has threads: each declares 1,000 bytes and sends 8.
    stalled = [
        stalled_request(server, "/api/2.0/mlflow/runs/create", declared=1000, sent=b'{"exper')
        for _ in range(THREADS + 2)
    ]
    time.sleep(0.5)  # they have all reached the server
    started = assert_probe_answers_at_once(server)
    for sock in stalled:
        assert_cut_with_408(answer_within(sock, BODY_TIMEOUT_SECONDS + 3))
    assert time.monotonic() - started < BODY_TIMEOUT_SECONDS + 4


def test_artifact_uploads_that_stall_midway_are_cut_store_nothing_and_a_probe_still_answers(server, tmp_path):
    created = requests.post(server.url + "/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}, timeout=10)
    folder = f"0/{created.json()['run']['info']['run_id']}/artifacts"
    # Each declares 100 MiB and sends 3 MiB, more than is read before a thread takes the upload,
    # so these stream into the app: at most THREADS - 1 at a time, each cut after the timeout.
    stalled = [
        stalled_request(
            server,
            f"/api/2.0/mlflow-artifacts/artifacts/{folder}/model-{number}.bin",
            declared=100 * MIB,
            sent=os.urandom(3 * MIB),
            method="PUT",
        )
        for number in range(THREADS + 1)
    ]
    time.sleep(0.5)
    assert_probe_answers_at_once(server)
    for sock in stalled:  # one after another, as an upload's thread is freed
        assert_cut_with_408(answer_within(sock, BODY_TIMEOUT_SECONDS * (THREADS + 1) + 3))

    listing = requests.get(server.url + "/api/2.0/mlflow-artifacts/artifacts", params={"path": folder}, timeout=10)
    assert listing.json() == {}
    incoming = tmp_path / "artifacts" / ".incoming"
    assert not incoming.exists() or not any(incoming.iterdir())
    # A client gone mid-upload is the client's doing: the log says so in a line, no traceback.
    log = server.stop()
    assert "Request Timeout" in log or "Request body not received" in log
    assert "Traceback" not in log, log


def test_a_chunked_json_request_is_read_whole(server):
    # A client that streams its body (Transfer-Encoding: chunked, no Content-Length) was answered
    # "Missing value for required parameter" as if it had sent nothing.
    api = server.url + "/api/2.0/mlflow/"
    run_id = requests.post(api + "runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    body = json.dumps({"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1_700_000_000_000, "step": 3})
    pieces = iter([body[:20].encode(), body[20:].encode()])  # a generator: requests sends it chunked
    response = requests.post(api + "runs/log-metric", data=pieces, headers={"Content-Type": "application/json"})
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 200, response.text
    metrics = requests.get(api + "runs/get", params={"run_id": run_id}).json()["run"]["data"]["metrics"]
    assert [(m["key"], m["value"], m["step"]) for m in metrics] == [("loss", 0.5, 3)]


def test_a_log_batch_over_the_prefetch_streams_in_and_is_stored_whole(server):
    # Bodies over RUNTREE_MAX_REQUEST_BYTES reach a thread while still arriving; log-batch may be one.
    api = server.url + "/api/2.0/mlflow/"
    run_id = requests.post(api + "runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    params = [{"key": f"p{i:03d}", "value": "é" * 6000} for i in range(100)]
    tags = [{"key": f"t{i:03d}", "value": "ü" * 8000} for i in range(100)]
    body = json.dumps({"run_id": run_id, "params": params, "tags": tags})  # ASCII-escaped, as the client sends
    assert len(body) > 2 * MIB
    response = requests.post(api + "runs/log-batch", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    data = requests.get(api + "runs/get", params={"run_id": run_id}).json()["run"]["data"]
    assert len(data["params"]) == 100 and {p["value"] for p in data["params"]} == {"é" * 6000}
    assert {t["value"] for t in data["tags"] if t["key"].startswith("t")} == {"ü" * 8000}
