"""Settings shared by every environment. All configuration comes from the environment."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import environ

from healthmail import content_policy

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()


def env_secret(name: str, default: str = "") -> str:
    """A secret from the variable NAME, or from the file NAME_FILE names (a mounted secret: it never
    shows in the process environment); the file wins when both are set."""
    path = env(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    value: str = env(name, default=default)  # django-environ has no types
    return value


SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
# Previous keys, still accepted for signatures made before a rotation (sessions, invitation tokens).
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
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
    "drf_spectacular_sidecar",  # Redoc's script, served from our static files (no CDN)
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_htmx",
    "csp",
    "healthmail.tenants",
    "healthmail.accounts",
    "healthmail.api",
    "healthmail.crypto",
    "healthmail.sysmail",
    "audit",
    "contacts",
    "consent",
    "segmentation",
    "campaigns",
    "delivery",
    "journeys",
    "retention",
    "dashboard",
    "fhir_api",
    "incidents",
    "demo",
]

MIDDLEWARE = [
    "healthmail.observability.RequestIdMiddleware",
    "healthmail.observability.MetricsMiddleware",
    "fhir_api.middleware.FhirOutcomeMiddleware",  # FHIR errors made outside its views, as OperationOutcomes
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # healthmail/content_policy.py; before the no-store and error answers
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Every answer below, also those refused before a view (413, a bad Host): static files above stay
    # cacheable; request.user, set further down, is read once the answer is made.
    "healthmail.no_store.NoStoreMiddleware",
    "healthmail.api.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "healthmail.api.middleware.RateLimitHeadersMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "healthmail.accounts.middleware.SessionSecurityMiddleware",
    "healthmail.web.middleware.TenantMiddleware",
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
                "healthmail.web.context_processors.tenant",
                "audit.context_processors.audit_review",
                "incidents.context_processors.policies_to_acknowledge",
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


def _database(url: str, *, as_owner: bool) -> dict[str, Any]:
    config: dict[str, Any] = environ.Env.db_url_config(url)
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
    # An unreachable server is an outage answered with 503 (healthmail/outages.py), not a request that
    # hangs until the proxy gives up.
    config["OPTIONS"]["connect_timeout"] = 5
    return config


DATABASE_URL = env("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/healthmail")
DATABASES = {"default": _database(DATABASE_URL, as_owner=DATABASE_ROLE == "owner")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --- Redis, cache, Celery ------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="hm"),
        # A Redis that stops answering fails a request in seconds (then 503 or a local count), never hangs it.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5},
    },
    # This process's own counters while Redis is unreachable (healthmail/outages.py: shared_or_local).
    "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "healthmail-local"},
}
# Seconds a client is told to wait (Retry-After) when PostgreSQL or Redis is unreachable.
OUTAGE_RETRY_AFTER_SECONDS = env.int("OUTAGE_RETRY_AFTER_SECONDS", default=30)
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
# socket_connect_timeout: a broker host that does not answer at all (not a refused port) fails a publish
# within a second instead of the system's TCP timeout (minutes), in API requests as in workers.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": 1}
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}

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
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="HealthMail")  # the name authenticator apps show
OTP_TOTP_THROTTLE_FACTOR = 1
# Sign-in back-off (healthmail/accounts/throttle.py): per account AND address, then per address.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=30)
LOGIN_BACKOFF_BASE_SECONDS = env.int("LOGIN_BACKOFF_BASE_SECONDS", default=30)
LOGIN_BACKOFF_MAX_SECONDS = env.int("LOGIN_BACKOFF_MAX_SECONDS", default=3600)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=86400)
API_KEY_FAILURE_LIMIT = env.int("API_KEY_FAILURE_LIMIT", default=30)
API_KEY_FAILURE_WINDOW_SECONDS = env.int("API_KEY_FAILURE_WINDOW_SECONDS", default=300)
# SMART Backend Services: how long an access token lives (the SMART guide suggests at most 5 minutes).
SMART_ACCESS_TOKEN_SECONDS = env.int("SMART_ACCESS_TOKEN_SECONDS", default=300)
# A client's JWK Set published at a URL: fetched through the SSRF guard with these limits, kept for the
# cache time, fetched again at most once per refetch interval (an unknown kid asks for it early).
SMART_JWKS_MAX_BYTES = env.int("SMART_JWKS_MAX_BYTES", default=65536)
SMART_JWKS_TIMEOUT_SECONDS = env.float("SMART_JWKS_TIMEOUT_SECONDS", default=5.0)
SMART_JWKS_CACHE_SECONDS = env.int("SMART_JWKS_CACHE_SECONDS", default=3600)
SMART_JWKS_REFETCH_SECONDS = env.int("SMART_JWKS_REFETCH_SECONDS", default=60)
# The beat fetches a URL's keys again once its cache is within two of these periods of expiring.
SMART_JWKS_REFRESH_SECONDS = env.int("SMART_JWKS_REFRESH_SECONDS", default=300)

# --- Web -------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".staticfiles"
STATICFILES_DIRS = [BASE_DIR / "healthmail" / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "healthmail.frontend.VendorFinder",  # the listed files of the npm packages (package.json)
]
# Where `npm ci` put the packages pinned in package.json (healthmail/frontend.py serves listed files).
FRONTEND_NODE_MODULES = env("FRONTEND_NODE_MODULES", default=str(BASE_DIR / "node_modules"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=2 * 1024 * 1024)
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = content_policy.POLICY
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="127.0.0.1")
EMAIL_PORT = env.int("EMAIL_PORT", default=1025)
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="HealthMail <no-reply@healthmail.invalid>")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)  # seconds; a stalled mail server must not hold a worker
# System mail (invitations, alerts, hold notices, reminders, portal codes) goes through a durable outbox
# (healthmail/sysmail): retried with exponential backoff and jitter from the first delay up to the cap,
# given up (recorded as failed) once its lifetime is over. See docs/operations.md, System mail.
SYSTEM_MAIL_RETRY_FIRST_SECONDS = env.int("SYSTEM_MAIL_RETRY_FIRST_SECONDS", default=60)
SYSTEM_MAIL_RETRY_MAX_SECONDS = env.int("SYSTEM_MAIL_RETRY_MAX_SECONDS", default=3600)
SYSTEM_MAIL_LIFETIME_SECONDS = env.int("SYSTEM_MAIL_LIFETIME_SECONDS", default=3 * 86400)
SYSTEM_MAIL_LEASE_SECONDS = env.int(
    "SYSTEM_MAIL_LEASE_SECONDS", default=300
)  # a claim held longer: worker died
SYSTEM_MAIL_SWEEP_SECONDS = env.float("SYSTEM_MAIL_SWEEP_SECONDS", default=30.0)
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
DEV_MAILBOX_DIR = env("DEV_MAILBOX_DIR", default="")

# --- API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["healthmail.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["healthmail.api.permissions.HasScopes"],  # undeclared scopes: refused
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["healthmail.api.parsers.StrictJSONParser"],
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
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "healthmail.api.schema_links.add_links",
    ],
    "ENUM_NAME_OVERRIDES": {
        "TemplateKindEnum": "campaigns.models.Template.Kind",
        "EncryptionPolicyEnum": "delivery.models.EncryptionPolicy",
        "TransactionalEncryptionPolicyEnum": "campaigns.transactional.ALLOWED_POLICY_CHOICES",
        "PurposeEnum": "consent.models.Purpose",
        "TransactionalPurposeEnum": "campaigns.transactional.PURPOSE_CHOICES",
    },
}

# --- Logging: JSON lines, request id and tenant id on every record, never PHI ----------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING: dict[str, Any] = {
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
        # The bounce detectors log each detector they try (and may log bounce content on errors).
        "flufl.bounce": {"level": "CRITICAL"},
    },
}
# LOG_FORMAT=console: one readable line per event on the terminal (healthmail/console_log.py; `make run`);
# LOG_FILE: the full JSON lines also go to this file.
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOG_FILE = env("LOG_FILE", default="")
if LOG_FORMAT == "console":
    LOGGING["formatters"]["console"] = {"()": "healthmail.console_log.ConsoleFormatter"}
    LOGGING["filters"]["quiet"] = {"()": "healthmail.console_log.QuietFilter"}
    LOGGING["handlers"]["console"].update(formatter="console", filters=["context", "quiet"])
if LOG_FILE:
    LOGGING["handlers"]["file"] = {
        "class": "logging.FileHandler",
        "filename": LOG_FILE,
        "formatter": "json",
        "filters": ["context"],
    }
    LOGGING["root"]["handlers"].append("file")
HEALTHZ_WORKER_TIMEOUT = env.float("HEALTHZ_WORKER_TIMEOUT", default=1.0)
# /metrics answers a scraper that presents `Authorization: Bearer <METRICS_TOKEN>` (when set) or that
# connects from one of METRICS_ALLOWED_NETWORKS (CIDR list; loopback by default, empty: none).
METRICS_TOKEN = env_secret("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = [
    network for network in env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"]) if network
]

# --- PHI encryption: the master key (KEK) ring; see healthmail/crypto/master.py --------------------
HEALTHMAIL_MASTER_KEY = env("HEALTHMAIL_MASTER_KEY", default="")
HEALTHMAIL_MASTER_KEY_FILE = env("HEALTHMAIL_MASTER_KEY_FILE", default="")
# Keys whose destruction must hold against database backups (epoch keys, healthmail/crypto/keystore.py):
# keep this directory off the database host and out of its backups.
HEALTHMAIL_KEYSTORE_DIR = env("HEALTHMAIL_KEYSTORE_DIR", default=str(BASE_DIR / ".devstack" / "keystore"))
HEALTHMAIL_EPOCH_ROTATE_SECONDS = env.float("HEALTHMAIL_EPOCH_ROTATE_SECONDS", default=86400.0)
# A data key sealing with random 96-bit nonces should be rotated well before 2^32 values (NIST SP
# 800-38D); `rotate_keys --status` marks a key due at this many (healthmail/crypto/usage.py).
HEALTHMAIL_DATA_KEY_ROTATE_AFTER = env.int("HEALTHMAIL_DATA_KEY_ROTATE_AFTER", default=2**24)
# How long a process may use its cached copy of a tenant key before checking that the key still
# exists (a tenant shredded by another process stops decrypting here within this many seconds).
HEALTHMAIL_KEY_CACHE_CHECK_SECONDS = env.float("HEALTHMAIL_KEY_CACHE_CHECK_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE["crypto-epochs-rotate"] = {
    "task": "healthmail.crypto.tasks.epochs_rotate_all",
    "schedule": HEALTHMAIL_EPOCH_ROTATE_SECONDS,
}

CELERY_BEAT_SCHEDULE["system-mail-sweep"] = {
    "task": "healthmail.sysmail.tasks.system_mail_sweep",
    "schedule": SYSTEM_MAIL_SWEEP_SECONDS,
}

# --- API idempotency
# Idempotency-Key records are answered for 24 hours; the sweep deletes them once an hour after that.
CELERY_BEAT_SCHEDULE["incident-clock-alerts"] = {
    "task": "incidents.tasks.incident_clock_alerts",
    "schedule": 3600.0,
}
CELERY_BEAT_SCHEDULE["baa-expiry-reminders"] = {
    "task": "incidents.tasks.baa_expiry_reminders",
    "schedule": 3600.0,
}
# Periodic access reviews (incidents/access_reviews.py): due every this many days after the last.
ACCESS_REVIEW_INTERVAL_DAYS = env.int("ACCESS_REVIEW_INTERVAL_DAYS", default=90)
CELERY_BEAT_SCHEDULE["access-review-reminders"] = {
    "task": "incidents.tasks.access_review_reminders",
    "schedule": 3600.0,
}
CELERY_BEAT_SCHEDULE["smart-jwks-refresh"] = {
    "task": "healthmail.accounts.tasks.smart_jwks_refresh",
    "schedule": float(SMART_JWKS_REFRESH_SECONDS),
}
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
# The name every SMTP connection greets with (EHLO). Receivers check it against the source IP's PTR
# record; production refuses `localhost` and anything that is not a fully qualified domain name.
DELIVERY_EHLO_HOSTNAME = env("DELIVERY_EHLO_HOSTNAME", default="localhost")
# The SPF mechanism every sender domain must include (the sending hosts' own SPF record). Empty: the
# sender-domain page tells the operator to configure it instead of showing a record that would break
# the tenant's SPF (an include of a domain without an SPF record is a permerror, RFC 7208 5.2).
DELIVERY_SPF_INCLUDE = env("DELIVERY_SPF_INCLUDE", default="")
# RFC 5321 §4.5.3.2's waits at each step of an SMTP transaction (delivery/smtp/timeouts.py). The final
# "." gets 10 minutes: giving up sooner resends mail the receiver was only slow to accept.
DELIVERY_SMTP_TIMEOUT_GREETING = env.float("DELIVERY_SMTP_TIMEOUT_GREETING", default=300.0)
DELIVERY_SMTP_TIMEOUT_MAIL = env.float("DELIVERY_SMTP_TIMEOUT_MAIL", default=300.0)
DELIVERY_SMTP_TIMEOUT_RCPT = env.float("DELIVERY_SMTP_TIMEOUT_RCPT", default=300.0)
DELIVERY_SMTP_TIMEOUT_DATA_INIT = env.float("DELIVERY_SMTP_TIMEOUT_DATA_INIT", default=120.0)
DELIVERY_SMTP_TIMEOUT_DATA_BLOCK = env.float("DELIVERY_SMTP_TIMEOUT_DATA_BLOCK", default=180.0)
DELIVERY_SMTP_TIMEOUT_DATA_END = env.float("DELIVERY_SMTP_TIMEOUT_DATA_END", default=600.0)
# A message waiting longer than this for a reply moves the rest of its connection's batch to a new
# connection; it goes on waiting alone (delivery/smtp/client.py).
DELIVERY_SMTP_STALL_SECONDS = env.float("DELIVERY_SMTP_STALL_SECONDS", default=30.0)
DELIVERY_CLAIM_BATCH = env.int("DELIVERY_CLAIM_BATCH", default=200)
DELIVERY_LEASE_SECONDS = env.int("DELIVERY_LEASE_SECONDS", default=300)
DELIVERY_DRAIN_SECONDS = env.float("DELIVERY_DRAIN_SECONDS", default=30.0)
DELIVERY_PARALLEL_DRAINS = env.int("DELIVERY_PARALLEL_DRAINS", default=4)
DELIVERY_MESSAGES_PER_CONNECTION = env.int("DELIVERY_MESSAGES_PER_CONNECTION", default=50)
DELIVERY_MX_CONNECTIONS = env.int("DELIVERY_MX_CONNECTIONS", default=8)
# SMTP sessions a worker process keeps open across rounds and claims (delivery/smtp/pool.py).
DELIVERY_POOL_CONNECTIONS = env.int("DELIVERY_POOL_CONNECTIONS", default=20)
DELIVERY_POOL_PER_HOST = env.int("DELIVERY_POOL_PER_HOST", default=8)
DELIVERY_POOL_IDLE_SECONDS = env.float("DELIVERY_POOL_IDLE_SECONDS", default=30.0)
DELIVERY_POOL_MESSAGES = env.int("DELIVERY_POOL_MESSAGES", default=1000)
DELIVERY_MX_CONCURRENCY = env.int("DELIVERY_MX_CONCURRENCY", default=20)
DELIVERY_MX_LEASE_SECONDS = env.int("DELIVERY_MX_LEASE_SECONDS", default=120)
DELIVERY_DOMAIN_RATE = env.float("DELIVERY_DOMAIN_RATE", default=500.0)
DELIVERY_DOMAIN_BURST = env.int("DELIVERY_DOMAIN_BURST", default=1000)
DELIVERY_RETRY_MINIMUM_SECONDS = env.int("DELIVERY_RETRY_MINIMUM_SECONDS", default=300)
DELIVERY_MAX_AGE_SECONDS = env.int("DELIVERY_MAX_AGE_SECONDS", default=5 * 86400)
DELIVERY_SOON_SECONDS = env.int("DELIVERY_SOON_SECONDS", default=5)
DELIVERY_REDIS_PREFIX = env("DELIVERY_REDIS_PREFIX", default="hm:delivery")
DELIVERY_RECOVERY_SECONDS = env.float("DELIVERY_RECOVERY_SECONDS", default=60.0)
# A drain holding claims beats this often; one silent for the grace is dead and loses its claims
# (delivery/engine/heartbeat.py): a killed worker's messages move on in seconds, not after the lease.
DELIVERY_HEARTBEAT_SECONDS = env.float("DELIVERY_HEARTBEAT_SECONDS", default=5.0)
DELIVERY_HEARTBEAT_GRACE_SECONDS = env.float("DELIVERY_HEARTBEAT_GRACE_SECONDS", default=20.0)
# Local disk of the worker's host (a volume that outlives the container): SMTP answers not yet in
# PostgreSQL wait here (delivery/engine/journal.py).
DELIVERY_JOURNAL_DIR = env("DELIVERY_JOURNAL_DIR", default=str(BASE_DIR / ".devstack" / "delivery-journal"))


def _relay(*, host: str, port: int, username: str, password: str) -> dict[str, Any] | None:
    """A smart host for a stream (always verified TLS; AUTH only over it), or None: direct MX."""
    if not host:
        return None
    return {"host": host, "port": port, "username": username, "password": password}


# Each stream's SMTP connections bind to its own source IP (its own sending reputation); empty: the OS
# picks. A relay (smart host) replaces direct MX delivery for that stream; its password may come from
# a file (DELIVERY_<STREAM>_RELAY_PASSWORD_FILE, a mounted secret).
DELIVERY_STREAMS = {
    "transactional": {
        "source_address": env("DELIVERY_TRANSACTIONAL_SOURCE_ADDRESS", default=""),
        "return_path_domain": env("DELIVERY_TRANSACTIONAL_RETURN_PATH_DOMAIN", default=""),
        "relay": _relay(
            host=env("DELIVERY_TRANSACTIONAL_RELAY_HOST", default=""),
            port=env.int("DELIVERY_TRANSACTIONAL_RELAY_PORT", default=587),
            username=env("DELIVERY_TRANSACTIONAL_RELAY_USERNAME", default=""),
            password=env_secret("DELIVERY_TRANSACTIONAL_RELAY_PASSWORD"),
        ),
    },
    "marketing": {
        "source_address": env("DELIVERY_MARKETING_SOURCE_ADDRESS", default=""),
        "return_path_domain": env("DELIVERY_MARKETING_RETURN_PATH_DOMAIN", default=""),
        "relay": _relay(
            host=env("DELIVERY_MARKETING_RELAY_HOST", default=""),
            port=env.int("DELIVERY_MARKETING_RELAY_PORT", default=587),
            username=env("DELIVERY_MARKETING_RELAY_USERNAME", default=""),
            password=env_secret("DELIVERY_MARKETING_RELAY_PASSWORD"),
        ),
    },
}
# DNS for delivery and sender-domain checks: "system" (the host's resolver; a local validating one for
# DANE), "static" (the zone file DELIVERY_DNS_ZONE_FILE: air-gapped sites, the dev mail world), or a
# dotted path to a resolver factory. DELIVERY_CA_FILE replaces the system trust store for MX TLS.
DELIVERY_RESOLVER = env("DELIVERY_RESOLVER", default="system")
DELIVERY_DNS_ZONE_FILE = env("DELIVERY_DNS_ZONE_FILE", default="")
DELIVERY_CA_FILE = env("DELIVERY_CA_FILE", default="")
# The reconciler: re-queues claims of dead workers, expires, and wakes due work the broker lost.
CELERY_BEAT_SCHEDULE["delivery-sweep"] = {"task": "delivery.tasks.transactional_sweep", "schedule": 30.0}

# --- Secure portal, bounces, tracking, webhooks (delivery/portal, inbound, tracking, webhooks) --------
PORTAL_CODE_SENDS_PER_LINK = env.int("PORTAL_CODE_SENDS_PER_LINK", default=5)  # per hour
PORTAL_CODE_SENDS_PER_IP = env.int("PORTAL_CODE_SENDS_PER_IP", default=20)  # per hour
PORTAL_FAILURES_PER_LINK = env.int("PORTAL_FAILURES_PER_LINK", default=10)  # wrong codes/passphrases per hour
PORTAL_FAILURES_PER_IP = env.int("PORTAL_FAILURES_PER_IP", default=30)
# Feedback (delivery/inbound/classify.py): soft bounces in a row that suppress an address, and the
# sender-side refusals by one receiving domain (within the window) that pause a stream to it.
DELIVERY_SOFT_BOUNCE_STREAK = env.int("DELIVERY_SOFT_BOUNCE_STREAK", default=5)
DELIVERY_SENDER_REJECTION_THRESHOLD = env.int("DELIVERY_SENDER_REJECTION_THRESHOLD", default=5)
DELIVERY_SENDER_REJECTION_WINDOW_SECONDS = env.int("DELIVERY_SENDER_REJECTION_WINDOW_SECONDS", default=3600)
DELIVERY_SENDER_PAUSE_SECONDS = env.int("DELIVERY_SENDER_PAUSE_SECONDS", default=3600)
DELIVERY_REPORTS_DOMAIN = env("DELIVERY_REPORTS_DOMAIN", default="")
# How long a secure-portal message stays readable after it is sent.
PORTAL_EXPIRY = timedelta(days=env.int("PORTAL_EXPIRY_DAYS", default=30))
# Only tests and a local mail world turn this on (to reach a local HTTP server); production refuses
# to start with it on (healthmail/deployment.py).
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)
# A CA bundle webhook targets are verified against instead of the system store (a private CA).
WEBHOOK_CA_FILE = env("WEBHOOK_CA_FILE", default="") or None
CELERY_BEAT_SCHEDULE["webhooks-sweep"] = {"task": "delivery.webhooks.tasks.webhooks_sweep", "schedule": 60.0}

# --- Templates: what one rendering may produce (campaigns/templating/limits.py). A template that can
# grow past the part limit is refused when saved; the real values are measured again before each render.
TEMPLATE_MAX_PART_CHARS = env.int("TEMPLATE_MAX_PART_CHARS", default=500_000)
TEMPLATE_MAX_MESSAGE_CHARS = env.int("TEMPLATE_MAX_MESSAGE_CHARS", default=1_000_000)
TEMPLATE_RENDER_SECONDS = env.float("TEMPLATE_RENDER_SECONDS", default=5.0)

# --- Segments: counting queries are cut off (what a count shows: DISCLOSURE_*, healthmail/disclosure.py)
SEGMENT_STATEMENT_TIMEOUT_MS = env.int("SEGMENT_STATEMENT_TIMEOUT_MS", default=2000)

# --- Campaigns: launches at their time, A/B decisions after their wait, sent campaigns closed -------
CELERY_BEAT_SCHEDULE["campaigns-sweep"] = {"task": "campaigns.tasks.campaigns_sweep", "schedule": 60.0}

# --- Journeys: due positions claimed in batches; the sweep finds what the broker lost -----------------
JOURNEYS_ADVANCE_BATCH = env.int("JOURNEYS_ADVANCE_BATCH", default=1000)
JOURNEYS_SWEEP_SECONDS = env.float("JOURNEYS_SWEEP_SECONDS", default=30.0)
CELERY_BEAT_SCHEDULE["journeys-sweep"] = {
    "task": "journeys.tasks.journeys_sweep",
    "schedule": JOURNEYS_SWEEP_SECONDS,
}

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

# A code without a readable label (healthmail/labels.py) raises instead of falling back to a
# capitalised form of the code: for development and tests, never in production.
LABELS_STRICT = env.bool("LABELS_STRICT", default=False)
