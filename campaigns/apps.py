from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Campaign messages are rendered by the delivery worker at send time (delivery/outbox.py).
        from delivery.outbox import register_renderer

        from .services.rendering import render_campaign_message

        register_renderer("campaign", render_campaign_message)
