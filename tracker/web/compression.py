"""gzip for pages, JSON and text assets when the client accepts it; never for downloads.

Why compress: a compare page of 1,000 runs is ~800 KiB of HTML, a `runs/search` page of 1,000
runs ~1 MB of JSON, both mostly repeated names, and plotly.js is 4.8 MB; over a network they
shrink several times (docs/benchmarks.md, "Compressed responses").

What is left alone, and why:
- downloads (`Content-Disposition: attachment`: CSV exports, artifacts) and partial responses
  (206, Range): a download keeps its Content-Length and its bytes exactly, a range stays a range
  of the file;
- types that are compressed already or not worth it (images, archives, binaries);
- bodies under a TCP packet, where compressing costs more than it saves;
- responses already encoded (WhiteNoise's precompressed brotli or gzip files in production).
Streaming responses of text types (static files served from the finders under `make run`) are
compressed chunk by chunk, so they still stream.

BREACH: pages carry a CSRF token in their forms. Django masks the token afresh in every response,
and Django's GZipMiddleware adds "Heal The Breach" random padding to every compressed body, so an
attacker cannot recover the token by watching compressed sizes; session cookies are never in a
body. So HTML is compressed too.
"""

import io
import secrets
from collections.abc import Iterable, Iterator

from django.middleware.gzip import GZipMiddleware, re_accepts_gzip
from django.utils.cache import patch_vary_headers
from django.utils.text import StreamingBuffer
from isal import igzip

COMPRESSIBLE_TYPES = frozenset(
    {
        "text/html",
        "text/plain",
        "text/css",
        "text/csv",
        "text/javascript",
        "application/javascript",
        "application/json",
        "image/svg+xml",
    }
)
MIN_BYTES = 1400  # about one TCP packet
# Django compresses with zlib at level 6. A `runs/search` page of 984 runs (850 KB of JSON) took
# 8.3 ms to compress at 6 and 3.6 at level 1 (medians, load ~3 on 2 cores), a tenth of the
# request. Intel's ISA-L (the `isal` package; gzip's format) at its level 1 takes 0.40 ms for that
# page against zlib's 2.27 at level 1 and 5.20 at 6, and sends 89 KB against 96 and 77 KB
# (2026-12-05, one process, medians of 50). Its level 3 took 1.35 ms for 85 KB.
LEVEL = 1


class CompressTextResponses(GZipMiddleware):
    """GZipMiddleware's steps, with ISA-L at LEVEL for whole bodies and streams alike."""

    def process_response(self, request, response):
        if not _worth_compressing(response) or response.has_header("Content-Encoding"):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        if not re_accepts_gzip.search(request.META.get("HTTP_ACCEPT_ENCODING", "")):
            return response
        if response.streaming:
            # Django's WSGI handler never makes an async stream; one would go out as it is.
            if response.is_async:
                return response
            response.streaming_content = _gzip_stream(response.streaming_content, self.max_random_bytes)
            del response.headers["Content-Length"]  # unknown until the stream ends
        else:
            compressed = _gzip_with_padding(response.content, self.max_random_bytes)
            if len(compressed) >= len(response.content):
                return response
            response.content = compressed
            response.headers["Content-Length"] = str(len(compressed))
        etag = response.get("ETag")
        if etag and etag.startswith('"'):
            response.headers["ETag"] = "W/" + etag  # a strong ETag names the uncompressed bytes
        response.headers["Content-Encoding"] = "gzip"
        return response


def _padding(max_random_bytes: int) -> str:
    """The random-length file name Django's compress_string adds ("Heal The Breach", see above)."""
    return "a" * (1 + secrets.randbelow(max_random_bytes))


def _gzip_with_padding(content: bytes, max_random_bytes: int) -> bytes:
    buffer = io.BytesIO()
    with igzip.GzipFile(
        filename=_padding(max_random_bytes), mode="wb", compresslevel=LEVEL, fileobj=buffer, mtime=0
    ) as gzipped:
        gzipped.write(content)
    return buffer.getvalue()


def _gzip_stream(chunks: Iterable[bytes], max_random_bytes: int) -> Iterator[bytes]:
    """Each chunk compressed as it comes (a static file from the finders, under `make run`)."""
    buffer = StreamingBuffer()
    with igzip.GzipFile(
        filename=_padding(max_random_bytes), mode="wb", compresslevel=LEVEL, fileobj=buffer, mtime=0
    ) as gzipped:
        yield buffer.read()  # the header
        for chunk in chunks:
            gzipped.write(chunk)
            if data := buffer.read():
                yield data
    yield buffer.read()


def _worth_compressing(response) -> bool:
    content_type = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type not in COMPRESSIBLE_TYPES:
        return False
    if response.status_code == 206 or response.has_header("Content-Range"):
        return False
    if "attachment" in response.get("Content-Disposition", "").lower():
        return False
    return response.streaming or len(response.content) >= MIN_BYTES
