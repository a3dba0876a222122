from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from consent.gate import gate_labels
        from healthmail import labels

        from .models import Campaign, Goal, Metric
        from .selectors import campaign_names
        from .services.audience import CAMPAIGN_LABELS
        from .services.history import ACTION_LABELS

        labels.register_choices("campaign_status", Campaign.Status)
        labels.register_choices("goal", Goal)
        labels.register_choices("metric", Metric)
        # Why a member of the audience got no message: the gate's codes and the frequency cap.
        labels.register("exclusion", {**gate_labels(), **CAMPAIGN_LABELS})
        labels.register("campaign_action", ACTION_LABELS)
        labels.register_source_namer("campaign", campaign_names)
        # Campaign messages are rendered by the delivery worker at send time (delivery/outbox.py).
        from delivery.outbox import register_renderer

        from .services.rendering import render_campaign_message

        register_renderer("campaign", render_campaign_message)
