"""config/wsgi_pool.py with a stand-in for granian's ASGI side: a thread gets a request only once
its body is in, a stalled body or an unread response is cut after the timeout, and a response
stops being produced once its client has gone. (tests/trust/test_slow_clients.py checks the same
against real granian.)"""

import asyncio
import gc
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest

from config.wsgi_pool import BodyNotReceived, WsgiPool

TIMEOUT = 0.3


def http_scope(method="POST", path="/x", headers=(), raw_path=None):
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "query_string": b"",
        "headers": [(name.encode(), value.encode()) for name, value in headers],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
        "http_version": "1.1",
    }


class Client:
    """What granian hands the app: `receive` gives the body pieces (then hangs if `stall`, or
    says the client went away), `send` records the answer."""

    def __init__(self, pieces=(), *, stall=False, gone_after_body=False):
        self.pieces = list(pieces)
        self.stall = stall
        self.gone_after_body = gone_after_body
        self.sent = []

    async def receive(self):
        if self.pieces:
            piece = self.pieces.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(self.pieces) or self.stall}
        if self.stall:
            await asyncio.sleep(3600)
        if self.gone_after_body:
            await asyncio.sleep(0.05)
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)  # granian: until the response ends or the client goes

    async def send(self, message):
        self.sent.append(message)

    @property
    def status(self):
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")

    @property
    def headers(self):
        return dict(next(m["headers"] for m in self.sent if m["type"] == "http.response.start"))

    @property
    def body(self):
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def echo_app(environ, start_response):
    """Answers with the body it read; a body that did not arrive is its 408 (as Django's is)."""
    try:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    except BodyNotReceived:
        start_response("408 Request Timeout", [("Content-Type", "text/plain")])
        return [b"timeout"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def serve(pool, *exchanges):
    """Run the exchanges concurrently, as granian would; each one's time to its answer."""

    async def one(scope, client):
        started = time.monotonic()
        await pool(scope, client.receive, client.send)
        return time.monotonic() - started

    async def all_of_them():
        return await asyncio.gather(*(one(scope, client) for scope, client in exchanges))

    # A loop of its own on a thread of its own: Playwright's sync API (the browser tests, which
    # may run first) keeps a loop running on this one.
    with ThreadPoolExecutor(max_workers=1) as runner:
        return runner.submit(asyncio.run, all_of_them()).result()


def test_a_body_arrives_whole_before_the_app_reads_it():
    pool = WsgiPool(echo_app, threads=1, client_timeout=TIMEOUT, prefetch_bytes=1024)
    client = Client([b"ab", b"cd", b"ef"])
    serve(pool, (http_scope(headers=[("content-length", "6")]), client))
    assert (client.status, client.body) == (200, b"abcdef")
    assert b"connection" not in client.headers  # the body was read: the connection can go on


def test_a_chunked_body_that_is_all_in_declares_its_length():
    # Django reads a body only as far as CONTENT_LENGTH: without one, chunked JSON read as empty.
    pool = WsgiPool(echo_app, threads=1, client_timeout=TIMEOUT, prefetch_bytes=1024)
    client = Client([b'{"a":', b" 1}"])
    serve(pool, (http_scope(headers=[("transfer-encoding", "chunked")]), client))
    assert (client.status, client.body) == (200, b'{"a": 1}')


def test_a_stalled_body_takes_no_thread_and_is_cut_after_the_timeout():
    pool = WsgiPool(echo_app, threads=1, client_timeout=TIMEOUT, prefetch_bytes=1024)
    stalled, probe = Client([b'{"exper'], stall=True), Client([b"ok"])
    stalled_seconds, probe_seconds = serve(
        pool,
        (http_scope(headers=[("content-length", "1000")]), stalled),
        (http_scope(headers=[("content-length", "2")]), probe),
    )
    assert (probe.status, probe.body) == (200, b"ok")
    assert probe_seconds < TIMEOUT / 2  # the only thread was free for it
    assert stalled.status == 408
    assert TIMEOUT <= stalled_seconds < TIMEOUT * 3
    assert stalled.headers[b"connection"] == b"close"  # the rest of its body will never be read


def test_an_upload_larger_than_the_prefetch_streams_and_is_cut_when_it_stalls():
    read = []

    def upload_app(environ, start_response):
        try:
            while chunk := environ["wsgi.input"].read(4):
                read.append(chunk)
        except BodyNotReceived:
            start_response("408 Request Timeout", [])
            return [b""]
        start_response("200 OK", [])
        return [b"stored"]

    pool = WsgiPool(upload_app, threads=2, client_timeout=TIMEOUT, prefetch_bytes=4)
    client = Client([b"1234", b"5678", b"9"], stall=True)
    serve(pool, (http_scope(method="PUT", headers=[("content-length", "100")]), client))
    assert read == [b"1234", b"5678"]  # it streamed what arrived before the stall
    assert client.status == 408


class GranianRequest:
    """As granian hands over a request: receive and send are methods of one object that holds the
    connection's body stream, and receive returns a future (no frame of the client's in any
    traceback). The body stalls after `pieces`."""

    def __init__(self, pieces):
        self.pieces = list(pieces)
        self.sent = []

    def receive(self):
        piece = asyncio.get_running_loop().create_future()
        if self.pieces:
            piece.set_result({"type": "http.request", "body": self.pieces.pop(0), "more_body": True})
        return piece  # after the pieces, never done: the client stopped sending

    def send(self, message):
        self.sent.append(message)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.mark.parametrize("prefetch_bytes", [1024, 4], ids=["cut before the app", "cut while streaming"])
def test_a_cut_request_lets_go_of_its_connection_without_waiting_for_the_garbage_collector(prefetch_bytes):
    """granian closes a connection whose body was never read to its end only once nothing holds
    the request's receive and send. A stalled upload's 408 once left them in a reference cycle
    (the stored BodyNotReceived's traceback), and the connection stayed open until the garbage
    collector ran: with it off here, the request must be freed all the same."""

    def upload_app(environ, start_response):
        try:
            while environ["wsgi.input"].read(4):
                pass
        except BodyNotReceived:
            start_response("408 Request Timeout", [])
            return [b""]
        start_response("200 OK", [])
        return [b"stored"]

    pool = WsgiPool(upload_app, threads=2, client_timeout=TIMEOUT, prefetch_bytes=prefetch_bytes)
    request = GranianRequest([b"1234", b"5678"])
    freed = weakref.ref(request)
    gc.collect()
    gc.disable()
    try:
        serve(pool, (http_scope(method="PUT", headers=[("content-length", "100")]), request))
        assert next(m["status"] for m in request.sent if m["type"] == "http.response.start") == 408
        del request
        assert freed() is None, "the request outlived its exchange: granian would hold the connection open"
    finally:
        gc.enable()


def test_a_download_stops_once_its_client_has_gone():
    produced = []

    class Download:
        def __iter__(self):
            for number in range(1000):
                produced.append(number)
                time.sleep(0.001)
                yield b"x" * 1024

        def close(self):
            produced.append("closed")

    def download_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Download()

    pool = WsgiPool(download_app, threads=1, client_timeout=TIMEOUT, prefetch_bytes=1024)
    client = Client([b""], gone_after_body=True)
    serve(pool, (http_scope(method="GET"), client))
    assert produced[-1] == "closed"
    assert len(produced) < 500, "the app went on producing the download for nobody"


def test_a_response_nobody_reads_is_cut_after_the_timeout():
    produced = []

    def download_app(environ, start_response):
        start_response("200 OK", [])
        for number in range(100):
            produced.append(number)
            yield b"x"

    class NotReading(Client):
        async def send(self, message):
            if len(self.sent) >= 3:
                await asyncio.sleep(3600)  # granian's send waits while the client reads nothing
            self.sent.append(message)

    pool = WsgiPool(download_app, threads=1, client_timeout=TIMEOUT, prefetch_bytes=1024)
    (seconds,) = serve(pool, (http_scope(method="GET"), NotReading([b""])))
    assert seconds < TIMEOUT * 3
    assert len(produced) < 10


@pytest.mark.parametrize(
    ("raw_path", "path_info"),
    [(b"/runs/%00/", "/runs/\x00/"), (b"/a%20b/%C3%A9", "/a b/\xc3\xa9"), (b"/bad%FF", "/bad\xff")],
)
def test_the_environ_has_the_path_as_pep_3333_says(raw_path, path_info):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("204 No Content", [])
        return []

    pool = WsgiPool(app, threads=1, client_timeout=TIMEOUT, prefetch_bytes=1024)
    serve(pool, (http_scope(method="GET", raw_path=raw_path), Client([b""])))
    assert seen["PATH_INFO"] == path_info


def test_the_environ_drops_headers_spelled_with_underscores_and_joins_repeats():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("204 No Content", [])
        return []

    headers = [
        ("x_forwarded_proto", "https"),  # would pass for the proxy's X-Forwarded-Proto
        ("accept", "text/html"),
        ("accept", "application/json"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
        ("content-type", "application/json"),
    ]
    pool = WsgiPool(app, threads=1, client_timeout=TIMEOUT, prefetch_bytes=1024)
    serve(pool, (http_scope(method="GET", headers=headers), Client([b""])))
    assert "HTTP_X_FORWARDED_PROTO" not in seen
    assert seen["HTTP_ACCEPT"] == "text/html,application/json"
    assert seen["HTTP_COOKIE"] == "a=1; b=2"
    assert seen["CONTENT_TYPE"] == "application/json"
