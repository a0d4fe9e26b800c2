"""Runtree settings: everything from the environment, with defaults that run on a fresh machine."""

import tempfile
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config import file_broker
from config.env import env_bool, env_choice, env_database, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
# The fallback key is only for local use. Its "django-insecure-" prefix makes
# `manage.py check --deploy` flag it, and RUNTREE_AUTH=required refuses it (below).
SECRET_KEY = env_str("SECRET_KEY") or "django-insecure-runtree-local-only-set-SECRET_KEY-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
# Origins (scheme://host[:port]) besides the server's own whose pages may write: to the API
# (tracker/web/cross_site.py) and through the forms (Django's CSRF check).
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "axes",
    "tracker",
    "registry",
    "dashboard",
]

MIDDLEWARE = [
    # Outermost, so it sees every response on its way out: gzip for pages, JSON and text when the
    # client accepts it, never for downloads (tracker/web/compression.py).
    "tracker.web.compression.CompressTextResponses",
    "django.middleware.security.SecurityMiddleware",
    # A NUL in the URL: a 400 before anything queries with it (tracker/web/request_guard.py).
    "tracker.web.request_guard.RequestGuardMiddleware",
    # PostgreSQL's statement_timeout on reads; before the shortcut so the RPCs get it too.
    "tracker.web.statement_timeout.ReadStatementTimeoutMiddleware",
    # An API write posted by another site's page: a 403 before the shortcut (tracker/web/cross_site.py).
    "tracker.web.cross_site.CrossSiteApiWriteGuard",
    # MLflow tracking RPCs go straight to their view from here (tracker/api/mlflow/shortcut.py).
    "tracker.api.mlflow.shortcut.TrackingApiShortcut",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Turns a login locked out by too many failed passwords into its answer (tracker/web/login_throttle.py);
    # outside AccessControlMiddleware, which checks HTTP Basic passwords.
    "axes.middleware.AxesMiddleware",
    # RUNTREE_AUTH: after the session user and the CSRF cookie are known, before any view.
    "tracker.web.auth.AccessControlMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # A lost database in a view: 503 TEMPORARILY_UNAVAILABLE (tracker/web/faults.py).
    "tracker.web.faults.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
    # The run tree's rows only (dashboard/jinja.py says why): views and tags ask for it by name.
    {
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "NAME": "jinja2",
        "DIRS": [BASE_DIR / "templates" / "jinja2"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "dashboard.jinja.environment"},
    },
]

DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'runtree.sqlite3'}")}
# The longest a read's statement may run on PostgreSQL (tracker/web/statement_timeout.py); a
# query cut by it is a 400 the client does not retry. 0 turns it off. Writes are never cut.
RUNTREE_STATEMENT_TIMEOUT_MS = env_int("RUNTREE_STATEMENT_TIMEOUT_MS", 5000)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.js from the installed package (dashboard/static_finders.py).
    "dashboard.static_finders.PlotlyFinder",
]
# Production sets STATIC_ROOT and runs `collectstatic` on deploy: every file gets a hashed name
# (cached for a year) and brotli and gzip copies made once, there (plotly.js: 4.8 MB to 1.1 MB,
# about a minute of brotli at its best setting). Without STATIC_ROOT (`make run`, tests) WhiteNoise
# serves straight from the finders, no collectstatic needed, and the middleware above gzips text
# files on the fly (plotly.js once per browser: its URL carries its version).
STATIC_ROOT = env_str("STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = STATIC_ROOT is None
if STATIC_ROOT:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

# The largest legal log-batch the mlflow client sends in one call is ~1.7 MB (tracker/api/mlflow/views.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("RUNTREE_MAX_REQUEST_BYTES", 2 * 1024 * 1024)

# The web server (config/asgi.py, config/wsgi_pool.py): threads per granian worker process that run
# Django, and how long a client may leave its request body unsent, or its response unread, before
# the request is cut (a 408 for a body) and the connection closed.
RUNTREE_WEB_THREADS = env_int("RUNTREE_WEB_THREADS", 4)
RUNTREE_CLIENT_TIMEOUT_SECONDS = env_int("RUNTREE_CLIENT_TIMEOUT_SECONDS", 10)
if RUNTREE_WEB_THREADS < 1 or RUNTREE_CLIENT_TIMEOUT_SECONDS < 1:
    raise ImproperlyConfigured("RUNTREE_WEB_THREADS and RUNTREE_CLIENT_TIMEOUT_SECONDS must be at least 1")

# Artifacts (tracker/services/artifacts.py), through Django's storage API: a local folder by
# default (made on first use), or S3-compatible object storage (django-storages on boto3) with
# RUNTREE_ARTIFACT_STORAGE=s3. boto3 reads the keys from its usual environment variables
# (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or an instance role), never from settings files.
RUNTREE_ARTIFACT_STORAGE = env_choice("RUNTREE_ARTIFACT_STORAGE", "local", {"local", "s3"})
RUNTREE_ARTIFACT_ROOT = env_str("RUNTREE_ARTIFACT_ROOT") or str(BASE_DIR / "artifacts")
# Artifact uploads stream to storage, so DATA_UPLOAD_MAX_MEMORY_SIZE does not apply to them;
# this is their own limit (5 GiB, S3's largest single PUT), refused with a 413 before storing.
RUNTREE_MAX_ARTIFACT_BYTES = env_int("RUNTREE_MAX_ARTIFACT_BYTES", 5 * 1024**3)
if RUNTREE_ARTIFACT_STORAGE == "s3":
    if not env_str("AWS_STORAGE_BUCKET_NAME"):
        raise ImproperlyConfigured("RUNTREE_ARTIFACT_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME")
    _ARTIFACT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
            # A key prefix inside the bucket, so one bucket can hold more than Runtree.
            "location": env_str("AWS_LOCATION"),
            # MinIO, Ceph, moto...: an S3-compatible server at its own address (path-style).
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "addressing_style": env_str("AWS_S3_ADDRESSING_STYLE")
            or ("path" if env_str("AWS_S3_ENDPOINT_URL") else None),
            # MLflow overwrites an artifact logged twice; so does Runtree.
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": False,
            # Downloads read an object's body as it streams (tracker/services/artifacts.py); any
            # other read through storage.open() is buffered in a temporary file past 8 MiB
            # (django-storages' default, 0, would keep a whole object in memory).
            "max_memory_size": 8 * 1024 * 1024,
        },
    }
else:
    _ARTIFACT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": RUNTREE_ARTIFACT_ROOT, "allow_overwrite": True},
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": _ARTIFACT_STORAGE,
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "tracker.api.native.paging.NativePagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Runtree native API",
    "DESCRIPTION": "Experiments, run trees, filters and summaries.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery. `make run` sets CELERY_BROKER_URL=filesystem://localhost/ (a folder, config/file_broker.py) and
# starts a worker and beat beside the web server; `make up` and production use Redis. With no broker
# at all (tests, a bare `manage.py`), tasks run eagerly in-process, inside the write.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
if CELERY_BROKER_URL.startswith("filesystem:"):
    _file_broker = file_broker.celery_settings(Path(env_str("RUNTREE_BROKER_FOLDER") or BASE_DIR / "runtree-broker"))
    CELERY_BROKER_TRANSPORT = _file_broker["broker_transport"]
    CELERY_BROKER_TRANSPORT_OPTIONS = _file_broker["broker_transport_options"]
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = _file_broker["worker_enable_remote_control"]
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A write queues its tree's refresh after commit; with the broker down it must not hang for
# long (the summary is only late: the periodic repair catches up).
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# With a broker, a queued refresh waits this long before it runs, and every write into its tree
# meanwhile rides on it: a sweep logging hundreds of values a second costs the worker a refresh
# per tree per interval, not one per write, and the writers no claim and no publish each.
# (Eager mode has no queue to wait in: 0.)
RUNTREE_SUMMARY_REFRESH_DELAY_MS = env_int("RUNTREE_SUMMARY_REFRESH_DELAY_MS", 500 if CELERY_BROKER_URL else 0)
if CELERY_TASK_ALWAYS_EAGER:
    # Eager tasks never reach a broker, but Celery 5.7 still takes a producer from its pool for
    # them; with no URL that meant its default (amqp, no host), and kombu logged "No hostname
    # was supplied" on the first write of `make run` as if Runtree were reaching for a server.
    # kombu's in-memory transport names a host and needs no server.
    CELERY_BROKER_URL = "memory://localhost/"
# The repair re-queues trees left with stale summaries (a lost task, a killed worker). Each run
# expires after one interval, so a worker that was down does not wake to a backlog of repairs.
RUNTREE_SUMMARY_REPAIR_SECONDS = env_int("RUNTREE_SUMMARY_REPAIR_SECONDS", 30)
if RUNTREE_SUMMARY_REPAIR_SECONDS < 1:
    raise ImproperlyConfigured(f"RUNTREE_SUMMARY_REPAIR_SECONDS={RUNTREE_SUMMARY_REPAIR_SECONDS} must be at least 1")
CELERY_BEAT_SCHEDULE = {
    "repair-stale-summaries": {
        "task": "tracker.tasks.repair_stale_summaries",
        "schedule": RUNTREE_SUMMARY_REPAIR_SECONDS,
        "options": {"expires": RUNTREE_SUMMARY_REPAIR_SECONDS},
    },
    # Parents whose summary changed since their param importance was fitted (tracker/summaries/importance.py).
    "refit-stale-importance": {
        "task": "tracker.tasks.refit_stale_importance",
        "schedule": 60,
        "options": {"expires": 60},
    },
    # Parents whose summaries settled since their band charts' data was kept (tracker/summaries/bands.py).
    "refresh-settled-bands": {
        "task": "tracker.tasks.refresh_settled_bands",
        "schedule": 30,
        "options": {"expires": 30},
    },
}
# Beat's record of last run times; losing it only means one early repair, so it lives outside the repo.
CELERY_BEAT_SCHEDULE_FILENAME = env_str(
    "RUNTREE_BEAT_SCHEDULE_FILE", str(Path(tempfile.gettempdir()) / "runtree-celerybeat-schedule")
)

# Access control (tracker/web/auth.py): "off" leaves pages and APIs open (for one person on
# 127.0.0.1); "required" asks for a login, an API token or HTTP Basic.
RUNTREE_AUTH = env_choice("RUNTREE_AUTH", "off", {"off", "required"})
if RUNTREE_AUTH == "required" and not env_str("SECRET_KEY"):
    raise ImproperlyConfigured("RUNTREE_AUTH=required needs a SECRET_KEY: login sessions are signed with it")
# Password guesses (login form and HTTP Basic) are throttled by django-axes: see tracker/web/login_throttle.py.
AUTHENTICATION_BACKENDS = [
    "tracker.web.login_throttle.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
RUNTREE_LOGIN_FAILURE_LIMIT = env_int("RUNTREE_LOGIN_FAILURE_LIMIT", 10)
RUNTREE_LOGIN_LOCKOUT_MINUTES = env_int("RUNTREE_LOGIN_LOCKOUT_MINUTES", 15)
AXES_FAILURE_LIMIT = RUNTREE_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=RUNTREE_LOGIN_LOCKOUT_MINUTES)
# One user name guessed at from anywhere, or one address guessing at any names.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_LOCKOUT_CALLABLE = "tracker.web.login_throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "tracker.web.login_throttle.client_address"
AXES_RESET_ON_SUCCESS = True
# No row per successful login: HTTP Basic logs in on every request (remembered for 5 minutes).
AXES_DISABLE_ACCESS_LOG = True
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:experiments"
LOGOUT_REDIRECT_URL = "login"

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy (django-csp): scripts only from Runtree's own origin and never inline
# (the pages' data rides in `json_script` blocks, which are not run), no plugins, no framing,
# no <base> pointing elsewhere. Styles may be inline: the tree indents rows with a style
# attribute and plotly.js and Swagger UI insert <style> elements; a style cannot run code.
# Images may be data: URIs (Swagger UI's icons, plotly's "download as PNG").
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
}

# RUNTREE_HTTPS=1 when Runtree is served over HTTPS. TLS terminates at a reverse proxy
# (nginx, a load balancer) that sets X-Forwarded-Proto, and must overwrite any value a client
# sent; Django then knows the request was secure. Off by default: `make run` is plain HTTP on
# 127.0.0.1, where these would redirect to an https:// that does not exist, and
# `check --deploy` warns about each of them while it is off.
RUNTREE_HTTPS = env_bool("RUNTREE_HTTPS", False)
if RUNTREE_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # One year, as browsers' HSTS guidance asks; covers hosts under Runtree's own host name
    # only. Start lower (RUNTREE_HSTS_SECONDS=300) the first time: browsers remember it.
    SECURE_HSTS_SECONDS = env_int("RUNTREE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Preloading asks browsers' vendors to hard-code HTTPS for the whole domain: a decision for
# the domain's owner (hstspreload.org), not a server default.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
