from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.apps import apps

        from healthmail import labels

        # What an audit event or a break-glass grant names as its object: the model's own name.
        labels.register(
            "object_type",
            {m._meta.label_lower: str(m._meta.verbose_name).capitalize() for m in apps.get_models()},
        )
