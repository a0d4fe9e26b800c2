import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("runtree")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def load_scikit_learn_before_the_pool_forks(**_):
    """A worker's pool processes are forked from this one after this signal. scikit-learn takes ~3 s
    to import (tracker/summaries/importance.py imports it only where it fits, so that web
    processes never pay); imported here, once, the processes inherit it. Otherwise each paid
    for it at its first importance refit, and a sweep's summary refreshes waited behind both
    (the summaries benchmark's lag: p95 0.5 s → 2.5 s)."""
    import sklearn.ensemble  # noqa: F401, PLC0415
    import sklearn.inspection  # noqa: F401, PLC0415
