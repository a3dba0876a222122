from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit.patients import patient_finder_register
        from healthmail import labels
        from healthmail.crypto.index_rotation import ChainedColumn, chained_register, reindexer_register
        from healthmail.crypto.integrity import integrity_check_register

        from .binding import damaged_bindings
        from .index_keys import (
            SEGMENTATION_FAMILIES,
            external_id_links_move,
            phone_indexes_move,
            segmentation_tokens_move,
        )
        from .normalize import DEMOGRAPHIC_LABELS, TAG_TOKEN_KIND
        from .selectors import contact_lookup_id

        patient_finder_register(contact_lookup_id)
        integrity_check_register(damaged_bindings)
        reindexer_register("contact phones", ("phone",), phone_indexes_move)
        reindexer_register("contact external ids", ("external_id",), external_id_links_move)
        # Clinical and demographic tokens: recomputed from the sealed values, so the older index-key
        # version is destroyed once every row is moved (a chain would keep it forever).
        reindexer_register("contact segmentation tokens", SEGMENTATION_FAMILIES, segmentation_tokens_move)
        # Email indexes and tags are compared with other tables' and kept only as tokens: re-keyed.
        chained_register(ChainedColumn("contacts_contact", "email_index", "email_index_next", "email"))
        chained_register(
            ChainedColumn("contacts_contact", "tag_tokens", "tag_tokens_next", TAG_TOKEN_KIND, tokens=True)
        )
        labels.register("demographic", DEMOGRAPHIC_LABELS)
