"""jobsite settings: every knob comes from an environment variable with a safe local default."""

import os
import re
import socket
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from jobsite.environment import (envbool, envchoice, envhosts, envinboxes, envint, envlist, local_secret_key,
                                 read_env_file)

BASE_DIR = Path(__file__).resolve().parent.parent


VAR_DIR = Path(os.environ.get("JOBSITE_VAR_DIR", BASE_DIR / "var"))
ENV_FILE = VAR_DIR / ".env"
if envbool("JOBSITE_READ_ENV_FILE", False):  # set by manage.py: gunicorn's web tier never takes DEBUG from it
    read_env_file(ENV_FILE)
DEBUG = envbool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set when DEBUG is off: set SECRET_KEY, or DEBUG=1 for local use, in the "
            f"environment or in {ENV_FILE} (`make run` writes DEBUG=1 there, and every manage.py command reads it)")
    SECRET_KEY = local_secret_key(VAR_DIR / "secret-key")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

# HTTPS. Cookies are Secure unless DEBUG is on; redirecting http to https and HSTS are the site's
# choice (HSTS binds browsers for SECURE_HSTS_SECONDS). Behind a proxy that terminates TLS, set
# JOBSITE_BEHIND_PROXY=1: its X-Forwarded-Proto then says whether a request came over https (the
# proxy must set that header itself, never pass on a client's).
BEHIND_PROXY = envbool("JOBSITE_BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATICFILES_DIRS = [BASE_DIR / "static"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "csp",
    "django_q",
    "jobs",
    "datafiles",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "jobsite.api.middleware.APIErrorMiddleware",  # every error under /api/ in JSON, DEBUG or not
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jobsite.urls"
WSGI_APPLICATION = "jobsite.wsgi.application"

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
]

# Database: SQLite under var/ unless DATABASE_URL says otherwise (PostgreSQL in production).
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'jobsite.sqlite3'}",
        conn_max_age=envint("DB_CONN_MAX_AGE", 600, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Several cluster workers write at once: WAL lets readers go on while one writes, the busy
    # timeout makes a writer wait instead of failing, and IMMEDIATE transactions take the write
    # lock up front, so a transaction never fails half-way with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests run a real cluster in another process, so the test database must be a file.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-jobsite.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Password attempts (dashboard and admin login, POST /api/v1/auth/token/) per client address, all
# together. Throttles count in Django's cache, per process unless JOBSITE_CACHE_URL names a shared one.
LOGIN_RATE = os.environ.get("JOBSITE_LOGIN_RATE", "10/min")
if not re.fullmatch(r"[0-9]+/(s|sec|second|m|min|minute|h|hour|d|day)", LOGIN_RATE):
    raise ImproperlyConfigured(f"JOBSITE_LOGIN_RATE must be like 10/min (per s, min, hour or day), not {LOGIN_RATE!r}")
CACHE_URL = os.environ.get("JOBSITE_CACHE_URL", "")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL} if CACHE_URL
          else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# API tokens expire this many seconds after they were handed out (0: never); DELETE /api/v1/auth/token/ revokes one.
TOKEN_TTL_SECONDS = envint("JOBSITE_TOKEN_TTL_SECONDS", 0, minimum=0)
# Shareable links to job outputs (POST .../outputs/{name}/link/) last this long unless asked for
# less, and never longer than the maximum; revoking the user's token ends them at once.
OUTPUT_LINK_SECONDS = envint("JOBSITE_OUTPUT_LINK_SECONDS", 3600, minimum=1)
OUTPUT_LINK_MAX_SECONDS = envint("JOBSITE_OUTPUT_LINK_MAX_SECONDS", 7 * 86400, minimum=1)
if OUTPUT_LINK_SECONDS > OUTPUT_LINK_MAX_SECONDS:
    raise ImproperlyConfigured(f"JOBSITE_OUTPUT_LINK_SECONDS ({OUTPUT_LINK_SECONDS}) is more than "
                               f"JOBSITE_OUTPUT_LINK_MAX_SECONDS ({OUTPUT_LINK_MAX_SECONDS})")
# Behind nginx: the internal location that serves MEDIA_ROOT (e.g. /protected-media/). Django then
# checks who may download a file and nginx sends it (X-Accel-Redirect); empty: Django sends it.
DOWNLOAD_ACCEL_PREFIX = os.environ.get("JOBSITE_DOWNLOAD_ACCEL_PREFIX", "")
if DOWNLOAD_ACCEL_PREFIX and not re.fullmatch(r"/[A-Za-z0-9._/-]*", DOWNLOAD_ACCEL_PREFIX):
    raise ImproperlyConfigured(f"JOBSITE_DOWNLOAD_ACCEL_PREFIX must be a path such as /protected-media/, "
                               f"not {DOWNLOAD_ACCEL_PREFIX[:100]!r}")
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate challenge makes a request without credentials a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jobs.api.auth.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "jobs.api.pagination.Pagination",
    # DRF's, with a JSON parser that refuses JSON nested too deeply for Python's decoder.
    "DEFAULT_PARSER_CLASSES": ["jobs.api.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "jobs.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "jobsite.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "URL_FORMAT_OVERRIDE": None,  # `?format=` belongs to the endpoints (data file content), not to renderers
    # The client address that throttles count by: the proxy's X-Forwarded-For entry behind one, else
    # the connection's (a client's own X-Forwarded-For is not believed).
    "NUM_PROXIES": 1 if BEHIND_PROXY else 0,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "jobsite API",
    "DESCRIPTION": "Raster jobs over a tile index: submit, watch, cancel, download.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our own static files: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},  # no badge fetched from elsewhere
    "ENUM_NAME_OVERRIDES": {"JobStatusEnum": "jobs.models.JobStatus", "TileStatusEnum": "jobs.models.TileStatus",
                            "JobStartEnum": "jobs.models.Start"},
}

# CORS is off unless origins are listed, e.g. CORS_ALLOWED_ORIGINS=https://maps.example.org
CORS_ALLOWED_ORIGINS = envlist("CORS_ALLOWED_ORIGINS")
# Shareable links (/api/v1/links/) answer any site themselves: the link is the credential, no cookie is sent.
CORS_URLS_REGEX = r"^/api/(?!v1/links/).*$"

# What pages may load: only this site's own files (no inline script or style), no frames around them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage" if not DEBUG
                    else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Task queue. The database is the truth about job state; the broker only carries wake-ups.
WORKERS = envint("JOBSITE_WORKERS", 2, minimum=1)
# The name this host's workers go by in tile leases and cluster heartbeats: the machine's own
# unless set (two clusters on one machine, each as a host of its own).
HOST_NAME = os.environ.get("JOBSITE_HOST_NAME") or socket.gethostname()
if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", HOST_NAME):
    raise ImproperlyConfigured(f"JOBSITE_HOST_NAME must be 1 to 100 letters, digits, dots, dashes or underscores, "
                               f"not {HOST_NAME!r}")
TASK_TIMEOUT = envint("JOBSITE_TASK_TIMEOUT", 900, minimum=10)
Q_BROKER = os.environ.get("Q_BROKER", "orm")
Q_CLUSTER = {
    "name": os.environ.get("Q_CLUSTER_NAME", "jobsite"),
    "workers": WORKERS,
    "timeout": TASK_TIMEOUT,
    # A task still unacknowledged after `retry` is delivered again; that time includes the wait in
    # the cluster's prefetch queue, so it must be well above the longest task.
    "retry": TASK_TIMEOUT * 2,
    "max_attempts": 3,
    "queue_limit": WORKERS,
    "save_limit": -1,  # results live in our own tables; saving successes only slows the broker
    "ack_failures": True,
    "catch_up": False,
    # How long an idle cluster waits before it asks the ORM broker again: the delay before a new
    # job's first tile starts. Redis hands tasks over as they arrive.
    "poll": envint("JOBSITE_BROKER_POLL_MS", 50, minimum=10) / 1000,
    "recycle": 500,
    "label": "Task queue",
}
if Q_BROKER == "orm":
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["broker_class"] = "jobs.broker.ORMBroker"
elif Q_BROKER.startswith(("redis://", "rediss://", "unix://")):
    Q_CLUSTER["redis"] = Q_BROKER
    Q_CLUSTER["broker_class"] = "jobs.broker.RedisBroker"
else:
    raise ImproperlyConfigured(f"Q_BROKER must be 'orm' or a redis:// URL, not {Q_BROKER!r}")

# Jobs.
# Tile tasks work through pending tiles for at most this long, then hand over to a fresh task,
# so that no task comes near the cluster's timeout.
TILE_TASK_BUDGET = envint("JOBSITE_TILE_TASK_BUDGET", 120, minimum=1)
TILE_LEASE_SECONDS = envint("JOBSITE_TILE_LEASE_SECONDS", 120, minimum=2)  # renewed every 0.5 s
# A tile whose error may pass (I/O, a lost worker) is tried this many times in all.
TILE_MAX_ATTEMPTS = envint("JOBSITE_TILE_MAX_ATTEMPTS", 3, minimum=1)
# A runner's task not started after this long is sent again (its broker message was lost).
STALE_WAKEUP_SECONDS = envint("JOBSITE_STALE_WAKEUP_SECONDS", 600, minimum=10)
# A task that waits this long to be taken while clusters are alive means they no longer take tasks
# (a worker killed while idle can wedge a django-q2 cluster): the health check then fails.
CLUSTER_STUCK_SECONDS = envint("JOBSITE_CLUSTER_STUCK_SECONDS", 120, minimum=5)
# Tile workers wait this long for a database that stopped answering (a restart) before they give up.
DATABASE_WAIT_SECONDS = envint("JOBSITE_DATABASE_WAIT_SECONDS", 60, minimum=0)
MAX_TILES_PER_JOB = envint("JOBSITE_MAX_TILES_PER_JOB", 10000, minimum=1)
MAX_ACTIVE_JOBS_PER_USER = envint("JOBSITE_MAX_ACTIVE_JOBS_PER_USER", 20, minimum=1)
# The most tiles of one user's jobs that may run at once, over all cluster hosts (their share of the
# workers); 0 for no limit. Staff set it per user in the admin (User limits).
MAX_RUNNING_TILES_PER_USER = envint("JOBSITE_MAX_RUNNING_TILES_PER_USER", 0, minimum=0)
# What each user's jobs may keep: the bytes of their outputs and interim results together, and the
# jobs themselves (finished ones too, until deleted). A submit beyond either is refused; no job is pruned.
JOB_STORAGE_QUOTA_BYTES = envint("JOBSITE_JOB_STORAGE_QUOTA_BYTES", 20 * 1024 * 1024 * 1024, minimum=1)
# What each user's jobs may process and use per day (UTC); 0 for no limit. Per user in the admin.
PIXELS_PER_DAY = envint("JOBSITE_PIXELS_PER_DAY", 0, minimum=0)
CPU_SECONDS_PER_DAY = envint("JOBSITE_CPU_SECONDS_PER_DAY", 0, minimum=0)
MAX_JOBS_PER_USER = envint("JOBSITE_MAX_JOBS_PER_USER", 1000, minimum=1)
INTERIM_RESULTS_DEFAULT = os.environ.get("JOBSITE_INTERIM_RESULTS", "on_error")
# The collection of tiles that jobs, tile lists and load_tiles use when none is named.
DEFAULT_COLLECTION = os.environ.get("JOBSITE_DEFAULT_COLLECTION", "default")
if INTERIM_RESULTS_DEFAULT not in ("always", "on_error", "never"):
    raise ImproperlyConfigured("JOBSITE_INTERIM_RESULTS must be always, on_error or never")

# GDAL and the network (jobsite/gdalpolicy.py). GDAL reaches no host unless it is listed here, e.g.
# JOBSITE_GDAL_HTTP_HOSTS=tiles.example.org for tiles loaded as /vsicurl/https://tiles.example.org/...
GDAL_HTTP_HOSTS = envlist("JOBSITE_GDAL_HTTP_HOSTS")

# Webhooks (notifications/). Hosts here may be private or loopback addresses (a site's own receivers);
# every other webhook URL must resolve to public addresses only (jobsite/outbound.py).
WEBHOOK_ALLOWED_HOSTS = envlist("JOBSITE_WEBHOOK_ALLOWED_HOSTS")
WEBHOOK_TIMEOUT_SECONDS = envint("JOBSITE_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
WEBHOOK_PROGRESS_SECONDS = envint("JOBSITE_WEBHOOK_PROGRESS_SECONDS", 10, minimum=1)
# The waits before the second, third ... try of a delivery: 8 tries over about a day.
try:
    WEBHOOK_RETRY_SECONDS = [int(value) for value in envlist("JOBSITE_WEBHOOK_RETRY_SECONDS",
                                                               ["10", "60", "300", "1800", "7200", "21600", "54000"])]
except ValueError:
    raise ImproperlyConfigured("JOBSITE_WEBHOOK_RETRY_SECONDS must be whole seconds, comma-separated") from None
WEBHOOK_RETENTION_DAYS = envint("JOBSITE_WEBHOOK_RETENTION_DAYS", 30, minimum=1)
# A cluster's webhook sender silent this long (stopped, or stuck in a call) is replaced (notifications/sender.py).
WEBHOOK_SENDER_STALL_SECONDS = envint("JOBSITE_WEBHOOK_SENDER_STALL_SECONDS", max(60, 2 * WEBHOOK_TIMEOUT_SECONDS + 1),
                                      minimum=2 * WEBHOOK_TIMEOUT_SECONDS + 1)
# The site's address as its users reach it (https://jobs.example.org): webhook payloads' links are absolute with it.
PUBLIC_URL = os.environ.get("JOBSITE_PUBLIC_URL", "")
# Event streams (notifications/streams.py): progress events at most this often (webhooks get them
# at most every JOBSITE_WEBHOOK_PROGRESS_SECONDS), and the streams one user may hold open in one
# web process.
EVENT_PROGRESS_SECONDS = envint("JOBSITE_EVENT_PROGRESS_SECONDS", 2, minimum=1)
STREAMS_PER_USER = envint("JOBSITE_STREAMS_PER_USER", 10, minimum=1)

# OGC API - Processes: an execute request without Prefer: respond-async waits this long for a job of at
# most this many tiles, and answers its results; a larger or slower one is answered as a job to watch.
# Such waits hold a web worker: at most JOBSITE_OGC_SYNC_WAITS at once per web process, one per user.
OGC_SYNC_MAX_TILES = envint("JOBSITE_OGC_SYNC_MAX_TILES", 16, minimum=0)
OGC_SYNC_SECONDS = min(envint("JOBSITE_OGC_SYNC_SECONDS", 30, minimum=1), 60)  # well within gunicorn's time-out
OGC_SYNC_WAITS = envint("JOBSITE_OGC_SYNC_WAITS", 1, minimum=0)
# Hosts (and ports) whose files an OGC API input may name by URL (fetched once, checked as an upload).
OGC_HREF_HOSTS = envhosts("JOBSITE_OGC_HREF_HOSTS")
# All of a request's fetches; with the check of the files (JOBSITE_DATAFILE_INSPECT_SECONDS) within 120 s.
OGC_HREF_SECONDS = min(envint("JOBSITE_OGC_HREF_SECONDS", 30, minimum=1), 30)
OGC_HREF_FETCHES = envint("JOBSITE_OGC_HREF_FETCHES", 2, minimum=0)  # at once per web process; one per user

# Job types declared by the site (see job-types.example.yaml): YAML files, comma-separated. Their
# programs are looked up, and run, with this PATH only.
JOB_TYPES_FILES = envlist("JOBSITE_JOB_TYPES_FILE")
TOOL_PATH = os.environ.get("JOBSITE_TOOL_PATH", "/usr/local/bin:/usr/bin:/bin")
# Job types written in Python: dotted paths of jobs.jobschema.JobType objects, comma-separated.
PYTHON_JOB_TYPES = envlist("JOBSITE_PYTHON_JOB_TYPES")
GDAL_HTTP_TIMEOUT = envint("JOBSITE_GDAL_HTTP_TIMEOUT", 30, minimum=1)
GDAL_HTTP_CONNECT_TIMEOUT = envint("JOBSITE_GDAL_HTTP_CONNECT_TIMEOUT", 10, minimum=1)
# GDAL's block cache in each process (web and cluster), in MB. GDAL's own default is 5 % of the
# machine's memory in every worker; a merge of 100,000 tiles is no faster with it than with 64 MB.
# GDAL's own GDAL_CACHEMAX, where an operator sets it, wins.
GDAL_CACHE_MB = None if os.environ.get("GDAL_CACHEMAX") else envint("JOBSITE_GDAL_CACHE_MB", 256, minimum=16)

# Data files.
DATAFILE_EXTENSIONS = envlist("JOBSITE_DATAFILE_EXTENSIONS", ["tif", "tiff", "gpkg", "geojson", "zip", "csv", "txt", "json"])
DATAFILE_MAX_BYTES = envint("JOBSITE_DATAFILE_MAX_BYTES", 512 * 1024 * 1024, minimum=1)
DATAFILE_QUOTA_BYTES = envint("JOBSITE_DATAFILE_QUOTA_BYTES", 4 * 1024 * 1024 * 1024, minimum=1)
# What an uploaded file may declare, checked before any pixel is read (datafiles/formats.py).
DATAFILE_MAX_PIXELS = envint("JOBSITE_DATAFILE_MAX_PIXELS", 10**9, minimum=1)  # width x height x bands
DATAFILE_MAX_LAYERS = envint("JOBSITE_DATAFILE_MAX_LAYERS", 100, minimum=1)
DATAFILE_MAX_FIELDS = envint("JOBSITE_DATAFILE_MAX_FIELDS", 1000, minimum=1)  # of a layer, or columns of a table
DATAFILE_MAX_UNPACKED_BYTES = envint("JOBSITE_DATAFILE_MAX_UNPACKED_BYTES", 2 * 1024**3, minimum=1)  # of a zip
# Uploads are inspected, and previews drawn, in a child process with these limits (datafiles/sandbox.py).
DATAFILE_INSPECT_SECONDS = envint("JOBSITE_DATAFILE_INSPECT_SECONDS", 60, minimum=1)
DATAFILE_INSPECT_MEMORY_BYTES = envint("JOBSITE_DATAFILE_INSPECT_MEMORY_BYTES", 2 * 1024**3, minimum=256 * 1024**2)
# Inbox folders (datafiles/inbox.py): files that other systems deliver become their users' data
# files. Entries "PATH=USERNAME" (a folder of one user) or "PATH" (a folder of one sub-folder per
# user name), comma-separated.
INBOXES = envinboxes("JOBSITE_INBOXES")
INBOX_COMPLETE = envchoice("JOBSITE_INBOX_COMPLETE", "rename", ("rename", "marker", "stable"))
INBOX_STABLE_SECONDS = envint("JOBSITE_INBOX_STABLE_SECONDS", 30, minimum=1)
INBOX_DONE = envchoice("JOBSITE_INBOX_DONE", "delete", ("delete", "processed"))
INBOX_NOTIFY = envbool("JOBSITE_INBOX_NOTIFY", True)  # the watcher follows the platform's notifications (inotify)
INBOX_SCAN_SECONDS = envint("JOBSITE_INBOX_SCAN_SECONDS", 10, minimum=1)  # the watcher's scans between notifications
# Tile inboxes (jobs/tileinbox.py): GeoTIFFs delivered to "PATH=COLLECTION" join that collection,
# moved into JOBSITE_TILE_STORE/COLLECTION/, taken as the inboxes above take their files.
TILE_INBOXES = envinboxes("JOBSITE_TILE_INBOXES", owner="COLLECTION", owner_pattern=r"[a-z0-9][a-z0-9_-]{0,63}")
TILE_STORE = Path(os.environ.get("JOBSITE_TILE_STORE", VAR_DIR / "tiles"))
# Polygons a zonal-statistics or clip job may take from one vector file.
MAX_ZONES = envint("JOBSITE_MAX_ZONES", 100_000, minimum=1)
MAX_ZONE_BYTES = envint("JOBSITE_MAX_ZONE_BYTES", 128 * 1024**2, minimum=1024)  # of their geometry, as WKB
# Uploads above this size go to a temporary file rather than memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024
# How long a job waits for the data files it names, unless it says (wait_timeout, seconds).
WAIT_TIMEOUT_SECONDS = envint("JOBSITE_WAIT_TIMEOUT_SECONDS", 24 * 3600, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
