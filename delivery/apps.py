from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Celery's autodiscovery imports delivery.tasks only; register the webhook tasks too.
        # The patient's copy of a signed authorization goes through the portal (consent sits below us).
        # So do codes and other patient mail of the consent pages (consent.patient_mail).
        from consent.copies import copy_sender_register
        from consent.patient_mail import patient_mail_sender_register

        from . import checks  # noqa: F401 - registers the deploy checks
        from .authorization_copies import authorization_copy_by_portal
        from .patient_mail import patient_mail_send
        from .webhooks import tasks  # noqa: F401

        copy_sender_register(authorization_copy_by_portal)
        patient_mail_sender_register(patient_mail_send)
