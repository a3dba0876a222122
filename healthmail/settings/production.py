"""Production: refuses to start on an unsafe configuration (healthmail/deployment.py lists the rules)."""

from django.core.exceptions import ImproperlyConfigured

from healthmail.deployment import production_problems

from .base import *  # noqa: F403
from .base import env

if not env("DATABASE_URL", default=""):
    raise ImproperlyConfigured("DATABASE_URL must be set in production.")

DEBUG = False
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)

# Every rule at once, so an operator fixes the whole list in one go instead of one start-up per error.
_problems = production_problems(globals())
if _problems:
    raise ImproperlyConfigured(
        "Unsafe production configuration (docs/operations.md, Environment variables):\n"
        + "\n".join(f"- {problem.message} {problem.hint}" for problem in _problems)
    )
