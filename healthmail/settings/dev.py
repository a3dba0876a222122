"""Local development (`make run`): embedded services from healthmail.devstack unless URLs are set."""

from .base import *  # noqa: F403
from .base import BASE_DIR, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-only-insecure-key-never-use-in-production")

# A master key generated on first `make run`, outside git, mode 0600 (healthmail.devstack).
HEALTHMAIL_MASTER_KEY_FILE = env(
    "HEALTHMAIL_MASTER_KEY_FILE", default=str(BASE_DIR / ".devstack" / "master.key")
)

# The local mail world's zone publishes this SPF record for the sending hosts (.test: RFC 2606).
DELIVERY_SPF_INCLUDE = env("DELIVERY_SPF_INCLUDE", default="_spf.healthmail.test")
