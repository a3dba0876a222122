"""Settings of the real Celery worker in test_worker.py: the test settings, with system mail sent over
SMTP to the test's receiver (its port from the environment) and a first retry within a second."""

import os

from healthmail.settings.test import *  # noqa: F403

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ["TEST_SYSTEM_MAIL_PORT"])
EMAIL_USE_TLS = False
EMAIL_TIMEOUT = 5
SYSTEM_MAIL_RETRY_FIRST_SECONDS = 1
