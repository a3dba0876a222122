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

        from .action_labels import ACTION_LABELS

        labels.register("audit_action", ACTION_LABELS)

        # The foundation writes audit events through healthmail.audit_trail (it sits below us).
        from healthmail.audit_trail import Writers, writers_register

        from .alerts import alert_integrity_damaged
        from .services import record

        writers_register(Writers(record=record, alert_integrity_damaged=alert_integrity_damaged))
