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

import gzip
import secrets

from django.middleware.gzip import GZipMiddleware, re_accepts_gzip
from django.utils.cache import patch_vary_headers

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
# Django compresses at level 6. A `runs/search` page of 984 runs (850 KB of JSON) took 8.3 ms to
# compress at 6 and 3.6 at level 1 (medians, load ~3 on 2 cores), a tenth of the request, for a
# body 25% larger (96 KB instead of 77 KB): level 1 is the faster answer on any link above
# ~30 Mbit/s (19 KB more to send against 4.7 ms saved), the LAN or datacenter a server sits on.
LEVEL = 1


class CompressTextResponses(GZipMiddleware):
    def process_response(self, request, response):
        if not _worth_compressing(response):
            return response
        if response.streaming:
            return super().process_response(request, response)
        # GZipMiddleware's steps for a whole body, at LEVEL.
        if response.has_header("Content-Encoding"):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        if not re_accepts_gzip.search(request.META.get("HTTP_ACCEPT_ENCODING", "")):
            return response
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


def _gzip_with_padding(content: bytes, max_random_bytes: int) -> bytes:
    """gzip at LEVEL, with the random-length file name Django's compress_string adds ("Heal The
    Breach", see above)."""
    compressed = gzip.compress(content, compresslevel=LEVEL, mtime=0)
    header = bytearray(compressed[:10])
    header[3] = gzip.FNAME
    return bytes(header) + b"a" * secrets.randbelow(max_random_bytes) + b"\x00" + compressed[10:]


def _worth_compressing(response) -> bool:
    content_type = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type not in COMPRESSIBLE_TYPES:
        return False
    if response.status_code == 206 or response.has_header("Content-Range"):
        return False
    if "attachment" in response.get("Content-Disposition", "").lower():
        return False
    return response.streaming or len(response.content) >= MIN_BYTES
