from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from healthmail import labels

        from . import categories  # noqa: F401 - registers the record categories
        from .models import DisposalCandidate
        from .registry import all_categories

        labels.register("record_category", {c.key: c.label for c in all_categories()})
        labels.register_choices("disposal_state", DisposalCandidate.State)

        from contacts.shredding import contact_keeper_register

        from .holds import contact_held

        # A deleted contact under a legal hold keeps its data (and key) until disposal after release.
        contact_keeper_register(contact_held)
