from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from contacts.shredding import contact_keeper_register

        from .holds import contact_held

        # A deleted contact under a legal hold keeps its data (and key) until disposal after release.
        contact_keeper_register(contact_held)
