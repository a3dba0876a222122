from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit.patients import patient_finder_register
        from healthmail import labels
        from healthmail.crypto.integrity import integrity_check_register

        from .binding import damaged_bindings
        from .normalize import DEMOGRAPHIC_LABELS
        from .selectors import contact_lookup_id

        patient_finder_register(contact_lookup_id)
        integrity_check_register(damaged_bindings)
        labels.register("demographic", DEMOGRAPHIC_LABELS)
