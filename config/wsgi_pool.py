"""Django (a WSGI app) served under granian's ASGI interface: request bodies are read on the event
loop with a deadline, and the app runs in a fixed pool of threads.

Why: under `--interface wsgi`, granian gives a request to one of its few blocking threads as soon
as the headers are in, and the thread then waits for the body with no time limit: four clients
that declare a body and stop sending froze a 4-thread worker (issue 21). granian has a header
timeout but no body timeout (upstream issue 728, closed as wontfix), and a timed read inside the
WSGI app froze the worker (granian's body reader blocks once reads are parked on other threads).
Here the event loop, which waits on any number of sockets at no cost, receives the body; a thread
gets the request only once its body is in, or, for an upload larger than `prefetch_bytes`, once
that much has arrived. Such an upload then streams into the app (never held whole in memory),
each wait for the client bounded by the timeout, and at most `threads - 1` of them at a time, so
one thread is always left for everything else. A response is sent the same way: a client that
stops reading it for the timeout, or goes away, ends the app's iteration (no thread waits on it).

Why hand-written rather than a library (each measured or read in its source):
- asgiref's WsgiToAsgi (a Django dependency) runs every request on one shared thread
  (sync_to_async's thread_sensitive default) and never calls the response's close(), which is
  where Django sends request_finished (database connections, open files);
- a2wsgi's WSGIMiddleware has a fixed pool, but its wsgi.input waits for the client from the app's
  thread with no deadline (the fault itself), and it goes on iterating a response after its
  client has gone (granian's send does not fail then): a cancelled 5 GiB download is read to
  its end;
- Django's own ASGIHandler runs each request in a thread of its own (no database connection
  outlives its request: ~2 ms more per call on PostgreSQL) and reads whole bodies with no deadline.
"""

import asyncio
import concurrent.futures
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote_to_bytes

from django.http import UnreadablePostError


class BodyNotReceived(UnreadablePostError):
    """The client stopped sending its body for the timeout, or went away. An UnreadablePostError,
    so Django answers it with the one 408 rule (tracker/web/faults.py), however the app read it."""


class ClientGone(OSError):
    """The client stopped reading the response for the timeout, or went away."""


class WsgiPool:
    """An ASGI app that serves `wsgi_app` from `threads` threads (each keeps its own database
    connection, as under granian's WSGI interface)."""

    def __init__(self, wsgi_app, *, threads: int, client_timeout: float, prefetch_bytes: int):
        self.wsgi_app = wsgi_app
        self.client_timeout = client_timeout
        self.prefetch_bytes = prefetch_bytes
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="runtree-web")
        # Uploads still arriving hold a thread while they wait for the client: never all of them.
        self.streaming_uploads = asyncio.Semaphore(max(1, threads - 1))

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            await Exchange(self, scope, receive, send).run()
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send, self.executor)
        # A websocket (granian offers them) finds no handler: returning refuses it.


async def _lifespan(receive, send, executor: ThreadPoolExecutor):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            executor.shutdown(wait=False)
            await send({"type": "lifespan.shutdown.complete"})
            return


def _declared_length(scope) -> int | None:
    """The body's length as the headers declare it: 0 for an HTTP/1 request with neither
    Content-Length nor Transfer-Encoding (RFC 9112 6.3), None when only its end will tell
    (chunked, or HTTP/2, which may send a body without either)."""
    headers = dict(scope["headers"])
    if b"transfer-encoding" in headers:
        return None
    if b"content-length" in headers:
        length = headers[b"content-length"].strip()
        return int(length) if length.isdigit() else None
    return 0 if scope.get("http_version", "1.1").startswith("1") else None


class Exchange:
    """One request and its response. The loop and the app's thread never touch the body buffer
    at the same time: the thread waits on the loop's future while the loop fills it."""

    def __init__(self, pool: WsgiPool, scope, receive, send):
        self.pool, self.scope, self.receive, self.send = pool, scope, receive, send
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.declared_length = _declared_length(scope)
        self.received = 0
        self.body_complete = self.declared_length == 0  # all of it received from the client
        self.all_buffered = self.body_complete  # ... and in `buffer`, where the app reads it
        self.body_error: BodyNotReceived | None = None
        self.client_gone = False
        self.ahead = bytearray()  # read while the app works; only the loop touches it
        self.reading_ahead: asyncio.Task | None = None
        self.watcher: asyncio.Task | None = None

    async def run(self):
        try:
            await self.answer()
        finally:
            self.let_go()

    async def answer(self):
        try:
            await self.fill(self.pool.prefetch_bytes)
        except BodyNotReceived as error:
            if self.client_gone:
                return  # nobody to answer
            self.body_error = error  # the app answers it (its 408), reading nothing
        if self.body_complete or self.body_error:
            response = await self.loop.run_in_executor(self.pool.executor, self.call_app)
        else:
            async with self.pool.streaming_uploads:
                try:
                    response = await self.loop.run_in_executor(self.pool.executor, self.call_app)
                finally:
                    self.stop_reading_ahead()  # the app answered without reading it all
        if response is not None:  # a whole response, sent from here (no thread waits on it)
            await self.send(response[0])
            await self.send(response[1])

    def let_go(self):
        """Drop this request's receive and send. granian closes a connection whose body was not
        read to its end (a 408, a refusal) only once nothing holds them: until then it keeps the
        body stream open for a reader. A stored BodyNotReceived's traceback leads back here in a
        cycle, which held them until the garbage collector next ran: seconds, or never on an idle
        server, with the stalled client's connection open all that time."""
        self.stop_reading_ahead()
        if self.watcher is not None:
            self.watcher.cancel()  # the response has been sent: nothing left to watch for
            self.watcher = None
        self.body_error = None
        self.receive = self.send = None

    # --- the request body, on the loop ----------------------------------------------------------

    async def fill(self, wanted: int):
        """Buffer at least `wanted` bytes, or the rest of the body if it is shorter; BodyNotReceived
        if the client sends nothing for the timeout or goes away. While the app works on what it
        took (an upload's thread writing its last piece), the loop reads on: the next pieces wait
        in `ahead`, so reading the socket and writing the file overlap."""
        if self.reading_ahead is not None:
            task, self.reading_ahead = self.reading_ahead, None
            await task  # its own deadline: raises BodyNotReceived as a read here would
        self.buffer += self.ahead
        self.ahead.clear()
        await self.receive_into(self.buffer, wanted)
        self.all_buffered = self.body_complete
        if not self.body_complete:
            self.reading_ahead = self.loop.create_task(self.receive_into(self.ahead, wanted))

    async def receive_into(self, buffer: bytearray, wanted: int):
        while not self.body_complete and len(buffer) < wanted:
            try:
                async with asyncio.timeout(self.pool.client_timeout):  # no task per call, unlike wait_for
                    message = await self.receive()
            except TimeoutError:
                raise BodyNotReceived(
                    f"The request body stopped arriving for {self.pool.client_timeout:g} s."
                ) from None
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise BodyNotReceived("The client went away before its request body ended.")
            piece = message.get("body", b"")
            buffer += piece
            self.received += len(piece)
            # granian says a body has ended only in a further, empty message: the declared length
            # says so one round trip sooner.
            self.body_complete = not message.get("more_body", False) or self.received == self.declared_length

    def stop_reading_ahead(self):
        if self.reading_ahead is not None:
            self.reading_ahead.cancel()
            # Retrieve its end so asyncio never reports an exception nobody asked for.
            self.reading_ahead.add_done_callback(lambda task: task.cancelled() or task.exception())
            self.reading_ahead = None

    # --- the app, on a thread of the pool -------------------------------------------------------

    def call_app(self):
        """Run the app. A response of one piece (any Django page or JSON answer) is returned for
        the loop to send; a longer one (a download, a CSV export) is streamed from here."""
        started = []

        def start_response(status, headers, exc_info=None):
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [int(status.split(" ", 1)[0]), headers]
            return self.write_unsupported

        body = self.pool.wsgi_app(self.environ(), start_response)
        try:
            if self.scope["method"] == "HEAD":  # no body goes out: never make one (a 5 GiB download's)
                return self.response_start(*started), {"type": "http.response.body", "body": b""}
            chunks = iter(body)
            first = next(chunks, b"")
            second = next(chunks, None)
            if second is None:
                return self.response_start(*started), {"type": "http.response.body", "body": first}
            self.send_from_thread(self.response_start(*started))
            self.send_from_thread({"type": "http.response.body", "body": first, "more_body": True})
            if self.body_complete:  # else receive() would hand over the unread body instead
                self.loop.call_soon_threadsafe(self.watch_for_disconnect)
            pending = second
            for chunk in chunks:
                self.send_from_thread({"type": "http.response.body", "body": pending, "more_body": True})
                pending = chunk
            self.send_from_thread({"type": "http.response.body", "body": pending})
            return None
        except ClientGone:
            return None
        finally:
            if hasattr(body, "close"):
                body.close()

    def response_start(self, status: int, headers) -> dict:
        encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        if not self.body_complete:
            # The rest of the body was never read (refused early, or cut): the connection cannot
            # carry another request, so say it closes.
            encoded.append((b"connection", b"close"))
        return {"type": "http.response.start", "status": status, "headers": encoded}

    def send_from_thread(self, message: dict):
        if self.client_gone:
            raise ClientGone("The client went away.")
        _result(asyncio.run_coroutine_threadsafe(self.send_in_time(message), self.loop), self.loop, ClientGone)

    async def send_in_time(self, message: dict):
        try:
            async with asyncio.timeout(self.pool.client_timeout):
                await self.send(message)
        except TimeoutError:
            self.client_gone = True
            raise ClientGone(f"The client read nothing of the response for {self.pool.client_timeout:g} s.") from None

    def watch_for_disconnect(self):
        """granian's send does not fail once the client has gone; its receive says so."""

        async def watch():
            while (await self.receive())["type"] != "http.disconnect":
                pass
            self.client_gone = True

        self.watcher = self.loop.create_task(watch())

    def write_unsupported(self, data: bytes):
        raise NotImplementedError("WSGI's write() callable is not offered; return an iterable.")

    # --- the WSGI environ ------------------------------------------------------------------------

    def environ(self) -> dict:
        scope = self.scope
        raw_path = scope.get("raw_path")
        # PEP 3333: the path percent-decoded, as bytes shown as latin-1 (what granian's WSGI
        # interface gives): a %00 or a byte that is not UTF-8 reaches the app as it was sent.
        path = unquote_to_bytes(raw_path.split(b"?", 1)[0]) if raw_path else scope["path"].encode()
        server_name, server_port = scope.get("server") or ("localhost", 80)
        environ = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": "",
            "PATH_INFO": path.decode("latin-1"),
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_NAME": server_name,
            "SERVER_PORT": str(server_port),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "REMOTE_ADDR": (scope.get("client") or ("", 0))[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": RequestBody(self),
            # The body ends where the input says so, chunked or not (PEP 3333's extension).
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for name, value in scope["headers"]:
            key = name.decode("latin-1").upper()
            if "_" in key:
                # `X_Forwarded_Proto` would read as X-Forwarded-Proto, which RUNTREE_HTTPS trusts
                # (a proxy sets it): dropped, as gunicorn and Django's runserver drop it.
                continue
            key = {"CONTENT-TYPE": "CONTENT_TYPE", "CONTENT-LENGTH": "CONTENT_LENGTH"}.get(key) or (
                "HTTP_" + key.replace("-", "_")
            )
            text = value.decode("latin-1")
            if key in environ:
                text = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + text
            environ[key] = text
        if "CONTENT_LENGTH" not in environ and self.all_buffered and self.buffer:
            # A chunked body (no Content-Length) that is all in: Django reads a body only as far
            # as CONTENT_LENGTH says, so without one it read a chunked JSON request as empty.
            environ["CONTENT_LENGTH"] = str(len(self.buffer))
        return environ


def _result(future: concurrent.futures.Future, loop: asyncio.AbstractEventLoop, gone: type[OSError]):
    """The loop's answer to a thread. Should the loop stop first (the worker shutting down), the
    thread gives up instead of waiting forever, which would keep the process from exiting."""
    while True:
        try:
            return future.result(timeout=1)
        except concurrent.futures.TimeoutError:
            if not loop.is_running():
                future.cancel()
                raise gone("The server is shutting down.") from None


class RequestBody:
    """wsgi.input: reads from the exchange's buffer, asking the loop for more when it runs out."""

    def __init__(self, exchange: Exchange):
        self.exchange = exchange

    def _more(self, wanted: int):
        exchange = self.exchange
        if exchange.all_buffered or len(exchange.buffer) >= wanted:
            return
        if exchange.body_error:
            raise exchange.body_error
        future = asyncio.run_coroutine_threadsafe(exchange.fill(wanted), exchange.loop)
        try:
            _result(future, exchange.loop, BodyNotReceived)
        except BodyNotReceived as error:
            exchange.body_error = error
            raise

    def _take(self, size: int) -> bytes:
        buffer = self.exchange.buffer
        with memoryview(buffer) as view:  # one copy, not two (a slice, then bytes of it)
            data = bytes(view[:size])
        del buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            self._more(sys.maxsize)
            return self._take(len(self.exchange.buffer))
        self._more(size)
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = sys.maxsize if size is None or size < 0 else size
        buffer = self.exchange.buffer
        while True:
            newline = buffer.find(b"\n", 0, limit)
            if newline >= 0:
                return self._take(newline + 1)
            if len(buffer) >= limit or self.exchange.all_buffered:
                return self._take(limit)
            self._more(len(buffer) + 65536)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")

    def close(self):
        pass
