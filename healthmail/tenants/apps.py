from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "healthmail.tenants"
    label = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from healthmail import checks  # noqa: F401 - registers the deploy checks (the core app's)
