"""Settings shared by every environment. All configuration comes from the environment."""

from pathlib import Path
from urllib.parse import quote

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_htmx",
    "healthmail.tenants",
    "healthmail.accounts",
    "healthmail.api",
    "healthmail.crypto",
    "audit",
    "contacts",
    "consent",
    "segmentation",
    "campaigns",
    "delivery",
    "retention",
]

MIDDLEWARE = [
    "healthmail.observability.RequestIdMiddleware",
    "healthmail.observability.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "healthmail.api.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "healthmail.accounts.middleware.SessionSecurityMiddleware",
    "healthmail.tenants.middleware.TenantMiddleware",
]

ROOT_URLCONF = "healthmail.urls"
WSGI_APPLICATION = "healthmail.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/login/"

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
                "healthmail.tenants.context_processors.tenant",
            ],
        },
    },
]


# --- Database -----------------------------------------------------------------------------------
# DATABASE_URL names the database and a role allowed to own its schema (used for set-up and
# migrations). The application itself connects as DATABASE_APP_USER, a role that is neither
# superuser nor BYPASSRLS nor owner, so PostgreSQL row-level security applies to every query.
# HEALTHMAIL_DB_ROLE=owner switches the default connection to the owner (manage.py db_setup/migrate).
DATABASE_APP_USER = env("DATABASE_APP_USER", default="healthmail_app")
DATABASE_APP_PASSWORD = env("DATABASE_APP_PASSWORD", default="")
DATABASE_ROLE = env("HEALTHMAIL_DB_ROLE", default="app")


def _database(url: str, *, as_owner: bool) -> dict:
    config = environ.Env.db_url_config(url)
    config["ENGINE"] = "django.db.backends.postgresql"
    if not as_owner:
        config["USER"] = DATABASE_APP_USER
        config["PASSWORD"] = DATABASE_APP_PASSWORD
    config["CONN_HEALTH_CHECKS"] = True
    # Reused connections are safe: the tenant setting is transaction-local (SET LOCAL), never per session.
    config["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    config.setdefault("OPTIONS", {})
    # A statement that runs away is cut off rather than holding a worker and its locks.
    config["OPTIONS"]["options"] = "-c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000"
    return config


DATABASE_URL = env("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/healthmail")
DATABASES = {"default": _database(DATABASE_URL, as_owner=DATABASE_ROLE == "owner")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def app_database_url() -> str:
    """The application role's URL on the configured database (used by devstack for workers)."""
    config = DATABASES["default"]
    password = f":{quote(DATABASE_APP_PASSWORD)}" if DATABASE_APP_PASSWORD else ""
    return f"postgres://{DATABASE_APP_USER}{password}@{config['HOST']}:{config['PORT']}/{config['NAME']}"


# --- Redis, cache, Celery ------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="hm"),
    }
}
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = REDIS_URL  # only tasks that opt in (ignore_result=False) store results
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 270
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE: dict = {}

# --- Sessions and authentication ------------------------------------------------------------------
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 12 * 3600
SESSION_ABSOLUTE_LIFETIME_SECONDS = env.int("SESSION_ABSOLUTE_LIFETIME_SECONDS", default=12 * 3600)
CSRF_COOKIE_HTTPONLY = False
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
OTP_TOTP_ISSUER = "HealthMail"
OTP_TOTP_THROTTLE_FACTOR = 1
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)
API_KEY_FAILURE_LIMIT = env.int("API_KEY_FAILURE_LIMIT", default=30)
API_KEY_FAILURE_WINDOW_SECONDS = env.int("API_KEY_FAILURE_WINDOW_SECONDS", default=300)

# --- Web -------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".staticfiles"
STATICFILES_DIRS = [BASE_DIR / "healthmail" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=2 * 1024 * 1024)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="127.0.0.1")
EMAIL_PORT = env.int("EMAIL_PORT", default=1025)
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="HealthMail <no-reply@healthmail.invalid>")
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
DEV_MAILBOX_DIR = env("DEV_MAILBOX_DIR", default="")

# --- API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["healthmail.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["healthmail.api.permissions.HasScopes"],  # undeclared scopes: refused
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "healthmail.api.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_CLASSES": ["healthmail.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env("API_RATE_LIMIT", default="600/min")},
    "EXCEPTION_HANDLER": "healthmail.api.errors.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "healthmail.api.schema.ProblemAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "HealthMail API",
    "DESCRIPTION": "Tenant-scoped API for EHR/CRM systems. Authenticate with `Authorization: Bearer <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
}

# --- Logging: JSON lines, request id and tenant id on every record, never PHI ----------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "healthmail.observability.LogContextFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django logs the request path of 4xx answers; paths carry no PHI (ids only), by design.
        "django.request": {"level": "ERROR"},
    },
}
HEALTHZ_WORKER_TIMEOUT = env.float("HEALTHZ_WORKER_TIMEOUT", default=1.0)
# When set, /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env("METRICS_TOKEN", default="")

# --- PHI encryption: the master key (KEK) ring; see healthmail/crypto/master.py --------------------
HEALTHMAIL_MASTER_KEY = env("HEALTHMAIL_MASTER_KEY", default="")
HEALTHMAIL_MASTER_KEY_FILE = env("HEALTHMAIL_MASTER_KEY_FILE", default="")

# --- API idempotency
# Idempotency-Key records are answered for 24 hours; the sweep deletes them once an hour after that.
CELERY_BEAT_SCHEDULE["api-idempotency-expire"] = {
    "task": "healthmail.api.tasks.idempotency_expire",
    "schedule": 3600.0,
}

# --- Audit chain: signed chain heads are appended here, outside the database -------------------------
AUDIT_CHECKPOINT_DIR = env("AUDIT_CHECKPOINT_DIR", default=str(BASE_DIR / ".devstack" / "audit-checkpoints"))
CELERY_BEAT_SCHEDULE["audit-seal"] = {"task": "audit.tasks.audit_seal", "schedule": 2.0}
CELERY_BEAT_SCHEDULE["audit-checkpoint"] = {"task": "audit.tasks.audit_checkpoint", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["audit-alerts"] = {"task": "audit.tasks.audit_alerts_scan", "schedule": 30.0}
CELERY_BEAT_SCHEDULE["audit-verify"] = {"task": "audit.tasks.audit_verify_all", "schedule": 3600.0}

# --- Contact import: uploads up to this size (sealed as they stream in); the body limit is raised
# for the upload page only. A sweep shreds week-old uploads and re-enqueues stalled jobs.
CONTACT_IMPORT_MAX_BYTES = env.int("CONTACT_IMPORT_MAX_BYTES", default=300 * 1024 * 1024)
REQUEST_BODY_MAX_BYTES_BY_PATH = {"/contacts/imports/new/": CONTACT_IMPORT_MAX_BYTES + 64 * 1024}
CELERY_IMPORTS = ["contacts.imports.tasks"]  # a package below an app: not autodiscovered
CELERY_BEAT_SCHEDULE["contact-imports-sweep"] = {
    "task": "contacts.imports.tasks.import_jobs_sweep",
    "schedule": 300.0,
}

# --- Consent: expire ended authorizations (the gate already refuses them) and send renewal reminders
CELERY_BEAT_SCHEDULE["consent-authorization-upkeep"] = {
    "task": "consent.tasks.authorization_upkeep_all",
    "schedule": 3600.0,
}

# --- Delivery engine (delivery/engine/config.py lists the DELIVERY_* tunables and their defaults) ----
# Each stream's SMTP connections bind to its own source IP (its own sending reputation); empty: the OS
# picks. The rest of a stream's identity (relay, return path) is set in DELIVERY_STREAMS too.
DELIVERY_STREAMS = {
    "transactional": {"source_address": env("DELIVERY_TRANSACTIONAL_SOURCE_ADDRESS", default="")},
    "marketing": {"source_address": env("DELIVERY_MARKETING_SOURCE_ADDRESS", default="")},
}
# The reconciler: re-queues claims of dead workers, expires, and wakes due work the broker lost.
CELERY_BEAT_SCHEDULE["delivery-sweep"] = {"task": "delivery.tasks.transactional_sweep", "schedule": 30.0}

# --- Secure portal, bounces, tracking, webhooks (delivery/portal, inbound, tracking, webhooks) --------
PORTAL_CODE_SENDS_PER_LINK = env.int("PORTAL_CODE_SENDS_PER_LINK", default=5)  # per hour
PORTAL_CODE_SENDS_PER_IP = env.int("PORTAL_CODE_SENDS_PER_IP", default=20)  # per hour
PORTAL_FAILURES_PER_LINK = env.int("PORTAL_FAILURES_PER_LINK", default=10)  # wrong codes/passphrases per hour
PORTAL_FAILURES_PER_IP = env.int("PORTAL_FAILURES_PER_IP", default=30)
# Only tests turn this on (to reach a local HTTP server); production refuses non-public targets.
WEBHOOK_ALLOW_PRIVATE_TARGETS = False
CELERY_BEAT_SCHEDULE["webhooks-sweep"] = {"task": "delivery.webhooks.tasks.webhooks_sweep", "schedule": 60.0}

# --- Campaigns: launches at their time, A/B decisions after their wait, sent campaigns closed -------
CELERY_BEAT_SCHEDULE["campaigns-sweep"] = {"task": "campaigns.tasks.campaigns_sweep", "schedule": 60.0}

# --- Retention: daily disposal planning, archive moves, hold review reminders; stalled runs resume
CELERY_BEAT_SCHEDULE["retention-daily"] = {"task": "retention.tasks.retention_daily_all", "schedule": 86400.0}

# --- Disclosure policy (healthmail/disclosure.py, docs/privacy.md): platform defaults; a tenant may
# be stricter (Tenant.disclosure_k / disclosure_rounding_base / disclosure_budget), never looser.
DISCLOSURE_K = env.int("DISCLOSURE_K", default=11)
DISCLOSURE_ROUNDING_BASE = env.int("DISCLOSURE_ROUNDING_BASE", default=10)
DISCLOSURE_NOISE_SCALE = env.float("DISCLOSURE_NOISE_SCALE", default=5.0)
DISCLOSURE_BUDGET = env.int("DISCLOSURE_BUDGET", default=200)
DISCLOSURE_WINDOW_HOURS = env.int("DISCLOSURE_WINDOW_HOURS", default=24)
DISCLOSURE_COMPARED_QUERIES = env.int("DISCLOSURE_COMPARED_QUERIES", default=20)
