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

from django.middleware.gzip import GZipMiddleware

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


class CompressTextResponses(GZipMiddleware):
    def process_response(self, request, response):
        if not _worth_compressing(response):
            return response
        return super().process_response(request, response)


def _worth_compressing(response) -> bool:
    content_type = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type not in COMPRESSIBLE_TYPES:
        return False
    if response.status_code == 206 or response.has_header("Content-Range"):
        return False
    if "attachment" in response.get("Content-Disposition", "").lower():
        return False
    return response.streaming or len(response.content) >= MIN_BYTES
