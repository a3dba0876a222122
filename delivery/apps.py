from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Celery's autodiscovery imports delivery.tasks only; register the webhook tasks too.
        from . import checks  # noqa: F401 - registers the deploy checks
        from .webhooks import tasks  # noqa: F401
