import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# What Django loaded lives as long as the worker, yet every full collection walked it again:
# a 1,000-run search page allocates enough to set one off every few requests, at ~35 ms each
# (7 ms a request on average). Frozen objects are skipped; what requests allocate is still collected.
gc.collect()
gc.freeze()
