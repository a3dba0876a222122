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
