"""How records are destroyed. Each function runs inside the disposal batch's transaction, on records
that were locked and checked against holds and exceptions in that same transaction.

- `delete_records`: the rows go, with what cascades from them (Django's collector follows every
  relation, so a model added later is handled too); every per-object key those rows used is
  deleted as well, so ciphertext left in backups or WAL can never be opened (crypto-shredding).
- `shred_content`: the content key is deleted and the ciphertext column cleared; the row's
  metadata stays (it has its own category and its own clock).
- `tombstone_contacts`: every encrypted field, blind index and keyed token of the contact is
  cleared; the row id stays because consent evidence (kept six years) points at it.
"""

from __future__ import annotations

import uuid

from django.db import DEFAULT_DB_ALIAS, models
from django.db.models.deletion import Collector

from healthmail.crypto.fields import EncryptedFieldMixin
from healthmail.crypto.models import ObjectKey

from .registry import Category


def _key_fields(model: type[models.Model]) -> list[str]:
    return [
        f.attname
        for f in model._meta.concrete_fields
        if isinstance(f, models.ForeignKey) and f.related_model is ObjectKey
    ]


def shred_keys(tenant_id: uuid.UUID, key_ids: set) -> int:
    """Delete object keys without Django's collector: every row that used them is already gone or
    cleared in this transaction (the deferred foreign keys are checked at commit)."""
    key_ids = {k for k in key_ids if k}
    if not key_ids:
        return 0
    return ObjectKey.objects.filter(tenant_id=tenant_id, pk__in=key_ids)._raw_delete(DEFAULT_DB_ALIAS)


def delete_records(category: Category, tenant_id: uuid.UUID, record_ids: list[str]) -> list[str]:
    model = category.source.model_class()
    rows = model.objects.filter(tenant_id=tenant_id, pk__in=record_ids)
    collector = Collector(using=DEFAULT_DB_ALIAS, origin=rows)
    collector.collect(rows)
    keys: set = set()
    for collected_model, instances in collector.data.items():
        for name in _key_fields(collected_model):
            keys.update(getattr(instance, name) for instance in instances)
    for queryset in collector.fast_deletes:
        for name in _key_fields(queryset.model):
            keys.update(queryset.values_list(name, flat=True))
    destroyed = [str(instance.pk) for instance in collector.data.get(model, ())]
    collector.delete()
    shred_keys(tenant_id, keys)
    return destroyed


def shred_content(category: Category, tenant_id: uuid.UUID, record_ids: list[str]) -> list[str]:
    model = category.source.model_class()
    rows = model.objects.filter(tenant_id=tenant_id, pk__in=record_ids)
    found = list(rows.values_list("pk", "content_key_id"))
    rows.update(content=None, content_key=None)
    shred_keys(tenant_id, {key for _, key in found})
    return [str(pk) for pk, _ in found]


def tombstone_contacts(category: Category, tenant_id: uuid.UUID, record_ids: list[str]) -> list[str]:
    from contacts.models import Contact, ContactExternalId

    rows = Contact.objects.filter(tenant_id=tenant_id, pk__in=record_ids)
    found = [str(pk) for pk in rows.values_list("pk", flat=True)]
    cleared: dict = {
        f.name: None for f in Contact._meta.concrete_fields if isinstance(f, EncryptedFieldMixin)
    }
    cleared.update(
        email_index=None,
        phone_index=None,
        demographic_tokens=[],
        clinical_tokens=[],
        tag_tokens=[],
        sensitive_categories=[],
        birth_year=None,
        age_90_or_older=False,
        zip3="",
        state="",
        gender="",
        language="",
        journey_stage="",
        is_minor=False,
    )
    rows.update(**cleared)
    ContactExternalId.objects.filter(tenant_id=tenant_id, contact_id__in=found).delete()
    return found


CONTACT_TOMBSTONED_SQL = (
    "r.email IS NULL AND r.first_name IS NULL AND r.last_name IS NULL AND r.phone IS NULL"
    " AND r.birth_date IS NULL AND r.postal_address IS NULL AND r.external_ids IS NULL"
    " AND r.demographics IS NULL AND r.clinical IS NULL AND r.custom_fields IS NULL"
    " AND r.email_index IS NULL AND r.phone_index IS NULL"
)
