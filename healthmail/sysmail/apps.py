from django.apps import AppConfig


class SystemMailConfig(AppConfig):
    name = "healthmail.sysmail"
    label = "sysmail"
    default_auto_field = "django.db.models.BigAutoField"
