"""A do-nothing MLflow tracking server: canned JSON for each call the client makes.

Timing the `mlflow` client against it measures the client's own cost per call (the floor),
which the ingest benchmark subtracts to get each real server's own cost.
"""

import json
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXPERIMENT = {"experiment_id": "1", "name": "bench", "lifecycle_stage": "active", "artifact_location": "/tmp"}


def run_info():
    run_id = uuid.uuid4().hex
    return {
        "run_id": run_id, "run_uuid": run_id, "experiment_id": "1", "run_name": "r", "user_id": "bench",
        "status": "RUNNING", "start_time": 0, "artifact_uri": "/tmp", "lifecycle_stage": "active",
    }  # fmt: skip


def answer(path: str) -> dict:
    if path.endswith("experiments/get-by-name") or path.endswith("experiments/get"):
        return {"experiment": EXPERIMENT}
    if path.endswith("experiments/create"):
        return {"experiment_id": "1"}
    if path.endswith("runs/create") or path.endswith("runs/get"):
        return {"run": {"info": run_info(), "data": {}}}
    if path.endswith("runs/update"):
        return {"run_info": run_info()}
    return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle's algorithm and the client's
    # delayed ACK add ~40 ms to every call and the "floor" measures TCP, not the client.
    disable_nagle_algorithm = True

    def _reply(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(answer(self.path.split("?")[0])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _reply

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
