"""Test settings: the same stack as production, with fast hashing and an in-memory outbox for
Django's own system mail (invitations). Delivery tests use real SMTP servers."""

import os
import tempfile

from .base import *  # noqa: F403
from .base import CACHES, DATABASE_URL, DATABASES, _database

SECRET_KEY = "test-only-key"  # noqa: S105
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True
# One prefix per test process, so concurrent runs and xdist workers never share counters.
CACHES["default"]["KEY_PREFIX"] = f"hm-test-{os.getpid()}"
ALLOWED_HOSTS = ["*"]

# The owner connection builds each test database (tests/conftest.py); tests themselves run as the
# application role, so row-level security is exercised by every test.
DATABASES["owner"] = _database(DATABASE_URL, as_owner=True)

# A fixed synthetic master key for tests only.
HEALTHMAIL_MASTER_KEY = "test:" + "dGVzdC1vbmx5LW1hc3Rlci1rZXktMzItYnl0ZXMhISE="
INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405 - a model with encrypted fields

# Sender-domain tests expect a configured SPF include (the unset case is tested by overriding it).
DELIVERY_SPF_INCLUDE = "_spf.healthmail.test"

# One journal per test process (several processes share the worktree); chaos workers share theirs.
DELIVERY_JOURNAL_DIR = os.environ.get("DELIVERY_JOURNAL_DIR") or os.path.join(
    tempfile.gettempdir(), f"hm-journal-{os.getpid()}"
)
