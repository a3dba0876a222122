from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "healthmail.api"
    label = "api"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI extension describing the Bearer scheme.
        from . import schema  # noqa: F401
