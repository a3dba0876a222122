from django.apps import AppConfig


class JourneysConfig(AppConfig):
    name = "journeys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from healthmail import labels

        from . import definition as spec
        from .models import Journey
        from .selectors import journey_names

        labels.register_choices("journey_status", Journey.Status)
        labels.register("journey_entry", spec.ENTRY_LABELS)
        labels.register("journey_engagement", spec.ENGAGEMENT_LABELS)
        labels.register("journey_consent_change", spec.CONSENT_CHANGE_LABELS)
        labels.register_source_namer("journey", journey_names)
        # Journey messages are rendered by the delivery worker at send time, like campaign messages;
        # named events posted to the events API reach journeys through delivery's registry.
        from delivery.outbox import register_renderer
        from delivery.tracking.events import register_event_type_handler

        from .services.events import journey_event_receive
        from .services.rendering import render_journey_message

        register_renderer("journey", render_journey_message)
        register_event_type_handler(journey_event_receive)

        from consent.services import register_change_handler

        from .services.events import consent_changes_receive

        register_change_handler(consent_changes_receive)

        from contacts.changes import register_change_handler as register_contacts_handler

        from .services import segments

        register_contacts_handler(segments.contacts_changed_receive)
        register_change_handler(segments.consent_changes_receive)

        from delivery.tracking.services import register_engagement_handler

        from .services.events import engagement_receive

        register_engagement_handler(engagement_receive)

        from delivery.tracking.events import register_report_handler

        from .services.events import form_submission_receive

        register_report_handler(form_submission_receive)

        # A template a journey sends may not be removed (campaigns asks; it imports nothing from here).
        from campaigns.services.template_lifecycle import register_template_use_counter

        from .selectors import journeys_using_template

        register_template_use_counter("journeys", journeys_using_template)
