"""The web server's entry point: granian's ASGI interface (Procfile), Django's WSGI app behind
config/wsgi_pool.py, which reads request bodies on the event loop with a deadline."""

import gc

from django.conf import settings

from config.wsgi import application as wsgi_application
from config.wsgi_pool import WsgiPool

application = WsgiPool(
    wsgi_application,
    threads=settings.RUNTREE_WEB_THREADS,
    client_timeout=settings.RUNTREE_CLIENT_TIMEOUT_SECONDS,
    # A body the APIs take whole (RUNTREE_MAX_REQUEST_BYTES) is in before a thread sees it; only
    # a larger one (an artifact upload) streams to the app.
    prefetch_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
)

# What is loaded by now (Django, the apps and their modules: ~97,000 objects) lives as long as the
# process. Frozen, it is left out of the collector's passes over the oldest generation, which
# walked all of it: a runs/search page of 984 runs spent 13.2 ms of its ~84 in collections, and
# 3.5 ms with this (gc.callbacks, in one process; 0.2 ms for a page of 100 runs either way).
gc.collect()
gc.freeze()
