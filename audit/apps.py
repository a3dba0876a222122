from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The foundation writes audit events through healthmail.audit_trail (it sits below us).
        from healthmail.audit_trail import Writers, writers_register

        from .alerts import alert_integrity_damaged
        from .services import record

        writers_register(Writers(record=record, alert_integrity_damaged=alert_integrity_damaged))
