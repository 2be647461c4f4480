"""Settings for every environment, read from environment variables through one environ.Env.

Each variable and its default is documented in README.md ("Configuration"). The defaults
give a zero-setup laptop run: SQLite and an embedded filesystem broker under var/.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
VAR_DIR = Path(env.str("LESIONTRACK_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key_from_var() -> str:
    """A key generated once into var/ so a laptop run needs no setup; production must set SECRET_KEY."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _secret_key_from_var()
PRODUCTION = False  # True in config.settings.production; demo seeding refuses to run there
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files served from here (no CDN; CSP allows 'self' only)
    "clinic",
    "lesions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "lesions.uploads.UploadLimitsMiddleware",
    "clinic.middleware.RejectNulCharactersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "clinic.middleware.IdleSessionTimeoutMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "clinic.middleware.SecurityHeadersMiddleware",
    "axes.middleware.AxesMiddleware",
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
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'lesiontrack.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# A kept connection is checked before reuse, so a database restart costs a reconnect, not a 500.
# https://docs.djangoproject.com/en/5.2/ref/databases/#caveats
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Kept connections (web processes and workers): one to a database host that vanished without
    # closing it (a crash, a failover) would hang a request or a task until the kernel gives up,
    # about 15 minutes. libpq's keepalives and TCP timeout end it within a minute. Options given in
    # DATABASE_URL win.
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
        "keepalives_count": 3, "tcp_user_timeout": 30_000, **DATABASES["default"].get("OPTIONS", {})}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The laptop default has a web process and a worker writing to one file: wait for the lock
    # rather than fail, and take it at the start of each transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Rendered fragments of what does not change (a done analysis's results, an unbound form with the
# same initial values) are cached in each process's memory, keyed by everything they are made
# of, so nothing needs invalidating and a deploy starts cold. Django's {% cache %} tag uses
# "template_fragments". https://docs.djangoproject.com/en/5.2/topics/cache/#template-fragment-caching
CACHES = {
    # Rate limits of the API live here: use Redis (CACHE_URL) when several web processes share them.
    "default": env.cache("CACHE_URL", default="locmemcache://default"),
    "template_fragments": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "fragments",
                           "OPTIONS": {"MAX_ENTRIES": env.int("FRAGMENT_CACHE_ENTRIES", default=20_000)}},
    # Whole rendered parts of the case and patient pages, kept under the clinic's data generation
    # (lesions.presentation.worklist_html, case_body_html, patient_lesions_html). Apart from the small fragments
    # above: an entry can be 100 KB (a case with 20 captures), so fewer are kept; the least
    # recently used go first.
    "page_parts": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "page-parts",
                   "OPTIONS": {"MAX_ENTRIES": env.int("PAGE_PART_CACHE_ENTRIES", default=1_000)}},
    # Patient searches' capped counts and rendered result rows (clinic.presentation.patient_search_page;
    # about 6 KB for a page of 25, so about 30 MB per process when full), under the same generations:
    # many entries (each text searched, each page), kept apart so that a burst of searches (an API
    # client paging) never pushes the pages above out.
    "searches": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "searches",
                 "OPTIONS": {"MAX_ENTRIES": env.int("SEARCH_CACHE_ENTRIES", default=5_000)}},
}

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "worklist"
LOGOUT_REDIRECT_URL = "login"

# Sessions end after inactivity (clinic.middleware.IdleSessionTimeoutMiddleware): the session is
# saved when the clinician does something, never by the page's own status polling, which stops
# asking after STATUS_POLL_MAX_SECONDS without activity.
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_TIMEOUT_MINUTES", default=30) * 60
SESSION_SAVE_EVERY_REQUEST = False
STATUS_POLL_MAX_SECONDS = env.int("STATUS_POLL_MAX_SECONDS", default=10 * 60)
# Flash messages name patients ("Patient Ada Example created."): kept in the session, not in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# A database error while saving the session is answered as the server error it is (500 page),
# never as Django's "400 Bad Request" (see config.sessions).
SESSION_ENGINE = "config.sessions"
SESSION_COOKIE_HTTPONLY = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_FAILURE_VIEW = "config.views.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Reverse proxies in front of the app that append to X-Forwarded-For (0: none, the app is reached
# directly and the header is ignored). The audit trail and the login lockout read the client
# address through clinic.client_address.client_ip, which trusts exactly this many hops.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# django-axes: lock a username+address pair after repeated failures (https://django-axes.readthedocs.io),
# so one person failing from one address locks neither the account elsewhere nor other clinicians
# behind the same proxy. The address is the real client's, resolved as above.
AXES_CLIENT_IP_CALLABLE = "clinic.client_address.client_ip"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.5)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)

# Patient images: private storage. Local files live under var/media and are only served
# through lesions.views.media (login + clinic check); S3 hands out short-lived presigned URLs.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = None
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local")  # local | s3
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("S3_BUCKET"),
            "endpoint_url": env.str("S3_ENDPOINT_URL", default=None),
            "access_key": env.str("S3_ACCESS_KEY_ID", default=None),
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default=None),
            "region_name": env.str("S3_REGION", default="us-east-1"),
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": env.int("S3_URL_EXPIRY_SECONDS", default=300),
            "file_overwrite": False,
            "addressing_style": "path",
            "signature_version": "s3v4",
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": None, "file_permissions_mode": 0o600,
                    "directory_permissions_mode": 0o700},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Uploads: limits enforced while the request streams in (lesions/uploads.py), then checked by
# content (lesions/images.py). Each limit is inclusive: a file of exactly UPLOAD_MAX_BYTES passes.
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=20 * 1024 * 1024)
UPLOAD_MAX_FILES = env.int("UPLOAD_MAX_FILES", default=10)
# Declared request size refused before reading: every file at its limit plus the form's fields.
UPLOAD_MAX_REQUEST_BYTES = env.int("UPLOAD_MAX_REQUEST_BYTES", default=UPLOAD_MAX_FILES * UPLOAD_MAX_BYTES + 1024 * 1024)
UPLOAD_MAX_PIXELS = env.int("UPLOAD_MAX_PIXELS", default=40_000_000)
# Pixels decoded at full size per image (about 50 MB as RGB); larger JPEGs are decoded at 1/2..1/8.
UPLOAD_MAX_DECODE_PIXELS = env.int("UPLOAD_MAX_DECODE_PIXELS", default=16_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES + 1  # Django's own backstop, past our clearer refusal
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "lesions.uploads.UploadLimitsHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Celery. Default: kombu's filesystem transport under var/broker, so a laptop needs no server.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # else kombu writes ./control in the cwd
        "store_processed": False,
    }
else:
    # Longer than the longest task's hard limit, so a running task is not redelivered
    # to a second worker while the first is still on it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_TASK_ALWAYS_EAGER = False
# Celery's Django fix-up closes the database connection around every task unless this is set; then
# it closes it about every this many tasks, and config.celery keeps connections as web requests do.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Queues are chosen where work is sent (lesions/queueing.py): analyses on "gpu", light work on "default".
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A prefork child (the worker image's pool) loads the models before it reports for duty: 10-30 s,
# more where it converts them to LiteRT. Celery kills a child that has not reported within 4 s by
# default, so after one child died every replacement was killed in turn and no analysis ran again.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env.float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", default=300.0)
# The sweep is cheap (two indexed queries when nothing is stuck) and runs often, so a row the
# broker never took is sent within a pass of the broker coming back.
ANALYSIS_SWEEP_INTERVAL_SECONDS = env.float("ANALYSIS_SWEEP_INTERVAL_SECONDS", default=30.0)
ORPHAN_SWEEP_INTERVAL_SECONDS = env.float("ORPHAN_SWEEP_INTERVAL_SECONDS", default=3600.0)
CELERY_BEAT_SCHEDULE = {
    "requeue-stuck-analyses": {"task": "lesions.tasks.requeue_stuck_analyses_task",
                               "schedule": ANALYSIS_SWEEP_INTERVAL_SECONDS},
    "remove-orphan-files": {"task": "lesions.tasks.remove_orphan_files_task",
                            "schedule": ORPHAN_SWEEP_INTERVAL_SECONDS},
}

# Analysis.
ANALYSIS_SOFT_TIME_LIMIT = env.int("ANALYSIS_SOFT_TIME_LIMIT", default=300)
ANALYSIS_TIME_LIMIT = env.int("ANALYSIS_TIME_LIMIT", default=360)
ANALYSIS_MAX_ATTEMPTS = env.int("ANALYSIS_MAX_ATTEMPTS", default=3)
ANALYSIS_STUCK_AFTER_SECONDS = env.int("ANALYSIS_STUCK_AFTER_SECONDS", default=600)
THUMBNAIL_STUCK_AFTER_SECONDS = env.int("THUMBNAIL_STUCK_AFTER_SECONDS", default=120)
# Transient (database, storage) errors: retries every 1, 2, 4, 8, 16 s then every 30 s.
RETRY_BACKOFF_CAP_SECONDS = env.int("RETRY_BACKOFF_CAP_SECONDS", default=30)
TRANSIENT_MAX_RETRIES = env.int("TRANSIENT_MAX_RETRIES", default=40)
# A stored file that no row names is removed once older than this: longer than the longest
# window between writing a file and committing its row (an analysis's hard time limit).
ORPHAN_GRACE_SECONDS = env.int("ORPHAN_GRACE_SECONDS", default=3600)
# Batching (lesions/batching.py): a GPU worker started with `-P threads -c N` and ANALYSIS_BATCH_SIZE=N
# runs the models once for up to N analyses; it waits at most ANALYSIS_BATCH_WAIT_MS for more.
ANALYSIS_BATCH_SIZE = env.int("ANALYSIS_BATCH_SIZE", default=1)
ANALYSIS_BATCH_WAIT_MS = env.int("ANALYSIS_BATCH_WAIT_MS", default=30)
ML_MODELS_DIR = env.str("ML_MODELS_DIR", default=str(BASE_DIR / "ml" / "models"))
LESION_GROWTH_FLAG_FRACTION = env.float("LESION_GROWTH_FLAG_FRACTION", default=0.2)
# Similar confirmed cases: each web process rebuilds a clinic's index when older than this.
SIMILAR_INDEX_MAX_AGE_S = env.int("SIMILAR_INDEX_MAX_AGE_S", default=300)

# Cache: rate limits of the REST API count here. The default is per process; several web
# processes share counts through Redis, e.g. CACHE_URL=redis://127.0.0.1:6379/1.

# REST API (/api/v1/): bearer tokens from the admin, JSON only, rate-limited per token.
# https://www.django-rest-framework.org/api-guide/settings/
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["clinic.api.authentication.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "clinic.api.schema.ApiAutoSchema",
    "DEFAULT_METADATA_CLASS": None,  # no OPTIONS self-description: the OpenAPI schema is the description
    "DEFAULT_THROTTLE_RATES": {
        "api_token": env.str("API_RATE_LIMIT", default="600/minute"),
        "api_upload": env.str("API_UPLOAD_RATE_LIMIT", default="120/minute"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "LesionTrack API",
    "DESCRIPTION": "Patients, lesions, captures, analyses and histopathology of one clinic, for dermoscopes "
                   "and records systems. Decision support, not a diagnosis. Every request needs an API token "
                   "(Authorization: Bearer lt_...) made by an administrator; it sees its own clinic only.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Record ids are positive; other paths under /api/ answer a JSON 404 (config.urls).
    "PATH_CONVERTER_OVERRIDES": {"int": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}
