from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.translation import gettext_lazy as _

        from healthmail import labels

        labels.register(
            "breakdown", {"state": _("State"), "age_band": _("Age band"), "language": _("Language")}
        )
