from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Readable labels of the codes consent owns (healthmail/labels.py).
        from healthmail import labels

        from .gate import gate_labels
        from .models import Authorization, AuthorizationKind, Purpose, Suppression

        labels.register("gate", gate_labels())
        from healthmail.crypto.index_rotation import ChainedColumn, chained_register

        # Address-only suppressions keep nothing but the index: re-keyed, not recomputed.
        chained_register(ChainedColumn("consent_suppression", "email_index", "email_index_next", "email"))
        labels.register_choices("suppression_reason", Suppression.Reason)
        labels.register_choices("authorization_status", Authorization.Status)
        labels.register_choices("authorization_kind", AuthorizationKind)
        labels.register_choices("purpose", Purpose)
        # Imports carry consent evidence: contacts' importer records it through us (contacts sits below).
        from contacts.imports.consent_columns import ConsentBook, consent_book_register

        from .services import consent_import_evidence, topics_ensure_system

        consent_book_register(ConsentBook(topics=topics_ensure_system, record=consent_import_evidence))
