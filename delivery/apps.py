from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.translation import gettext_lazy as _

        from healthmail import labels

        from .models import DeliveryReport, EngagementEvent, Message

        labels.register_choices("message_state", Message.State)
        labels.register_choices("bounce_class", DeliveryReport.Kind)
        labels.register(
            "source_type",
            {
                "campaign": _("Campaign"),
                "journey": _("Journey"),
                "api": _("API message"),
                "campaign_test": _("Test send"),
                "authorization_copy": _("Copy of a signed authorization"),
                "patient_mail": _("Notice to a patient"),
                "synthetic": _("Synthetic test message"),
                "": _("Message"),
            },
        )
        labels.register(
            "delivery_path",
            {
                "direct": _("Direct (verified TLS)"),
                "portal": _("Secure portal"),
                "waiver": _("Patient waiver"),
            },
        )
        # The message evidence page: attempt outcomes, how TLS was verified, where the policy came from.
        labels.register(
            "attempt_outcome",
            {
                "delivered": _("Delivered (the server accepted it)"),
                "deferred": _("Deferred (temporary failure, retried later)"),
                "bounced": _("Bounced (permanent failure)"),
                "ambiguous": _("Ambiguous (connection lost after sending; resent with the same id)"),
                "refused": _("Refused by us (TLS requirement not met)"),
            },
        )
        labels.register(
            "tls_method",
            {
                "pkix": _("certificate chain (PKIX)"),
                "dane": _("DANE (TLSA records)"),
                "opportunistic": _("opportunistic, unverified"),
                "none": _("no TLS"),
            },
        )
        labels.register(
            "tls_policy_source",
            {
                "dane": _("DANE"),
                "mta-sts": _("MTA-STS"),
                "starttls-probe": _("STARTTLS probe"),
                "relay": _("Relay"),
                "none": _("No policy"),
            },
        )
        labels.register(
            "tls_policy_mode",
            {"enforce": _("enforced"), "testing": _("testing only"), "none": _("not enforced")},
        )
        # Celery's autodiscovery imports delivery.tasks only; register the webhook tasks too.
        # The patient's copy of a signed authorization goes through the portal (consent sits below us).
        # So do codes and other patient mail of the consent pages (consent.patient_mail).
        from consent.copies import copy_sender_register
        from consent.patient_mail import patient_mail_sender_register
        from healthmail.crypto.index_rotation import ChainedColumn, chained_register

        from . import checks  # noqa: F401 - registers the deploy checks

        chained_register(
            ChainedColumn("delivery_message", "to_address_index", "to_address_index_next", "email")
        )
        from .authorization_copies import authorization_copy_by_portal
        from .patient_mail import patient_mail_send
        from .webhooks import tasks  # noqa: F401

        copy_sender_register(authorization_copy_by_portal)
        patient_mail_sender_register(patient_mail_send)
        # Segment rules on opens and clicks read our tracking events (segmentation sits below us).
        from segmentation.engagement import EngagementSource, engagement_source_register

        from .tracking.selectors import engagement_facts

        engagement_source_register(EngagementSource(EngagementEvent._meta.db_table, engagement_facts))
