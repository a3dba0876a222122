"""`manage.py check --deploy`: the production rules (healthmail/deployment.py) as errors, under any
settings module, so a deployment built on its own settings is held to the same rules."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from healthmail import frontend
from healthmail.deployment import production_problems

SETTINGS = (
    "SECRET_KEY",
    "HEALTHMAIL_MASTER_KEY",
    "HEALTHMAIL_MASTER_KEY_FILE",
    "DEBUG",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "PUBLIC_BASE_URL",
    "WEBHOOK_ALLOW_PRIVATE_TARGETS",
    "DELIVERY_EHLO_HOSTNAME",
)


@checks.register(checks.Tags.security, deploy=True)
def production_settings_check(app_configs: object, **kwargs: object) -> list[checks.CheckMessage]:
    values = {name: getattr(settings, name, None) for name in SETTINGS}
    problems = production_problems(values)
    return [checks.Error(problem.message, hint=problem.hint, id=problem.id) for problem in problems]


@checks.register()
def frontend_files_check(app_configs: object, **kwargs: object) -> list[checks.CheckMessage]:
    missing = frontend.missing_files()
    if not missing:
        return []
    message = f"Front-end files are missing from {frontend.node_modules()}: {', '.join(missing)}."
    hint = "Run `make frontend` (npm ci) to install the packages pinned in package.json."
    return [checks.Error(message, hint=hint, id="healthmail.E020")]
