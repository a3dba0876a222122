"""The contacts' re-indexers for index-key rotation (healthmail/crypto/index_rotation.py): phone
indexes (from each contact's own phone), external-id links (from the id its contact holds), and the
clinical and demographic tokens segmentation matches (from the contact's sealed clinical,
demographic and segmentable custom values, through the same `normalize.segmentation_columns` an
upsert uses).

Each batch locks the rows it reads (FOR UPDATE: an upsert of the same contact waits, so an index is
never computed from a stale read), recomputes the index under the version being written and writes
only the rows whose index differs, so a rerun writes nothing already moved. A row whose value does
not decrypt, or a link naming an id its contact does not hold, is reported as damaged and left as
it is. Values are read as the system and never leave this module.
"""

from __future__ import annotations

import uuid

from django.db import connection, transaction
from django.db.models import Q

from healthmail.crypto import access, blind, rowkeys
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.integrity import Damage, sealed_damage
from healthmail.tenants.context import tenant_context

from . import normalize
from .models import Contact, ContactExternalId, CustomField

Batch = tuple[int, int, object | None, list[Damage]]


def _grant(field: str) -> access.Grant:
    return access.Grant("contacts.contact", frozenset({field}), None)


def phone_indexes_move(tenant_id: uuid.UUID, after: object | None, batch_size: int) -> Batch:
    damaged: list[Damage] = []
    changed = 0
    with (
        tenant_context(tenant_id),
        transaction.atomic(),
        access.granted(_grant("phone")),
        rowkeys.key_scope(),
    ):
        rows = Contact.objects.filter(tenant_id=tenant_id, phone_index__isnull=False)
        if after is not None:
            rows = rows.filter(pk__gt=after)
        batch = list(rows.order_by("pk").select_for_update()[:batch_size])
        rowkeys.row_ciphers(tenant_id, [contact.object_key_id for contact in batch])
        for contact in batch:
            try:
                phone = contact.phone
            except DecryptionError:
                damaged.append(sealed_damage(contact))
                continue
            index = blind.blind_index(tenant_id, "phone", phone) if phone else None
            if index != bytes(contact.phone_index or b""):
                changed += Contact.objects.filter(pk=contact.pk).update(phone_index=index)
    return len(batch), changed, (batch[-1].pk if batch else after), damaged


def external_id_links_move(tenant_id: uuid.UUID, after: object | None, batch_size: int) -> Batch:
    damaged: list[Damage] = []
    changed = 0
    grant = _grant("external_ids")
    with tenant_context(tenant_id), transaction.atomic(), access.granted(grant), rowkeys.key_scope():
        rows = ContactExternalId.objects.filter(tenant_id=tenant_id).select_related("contact")
        if after is not None:
            rows = rows.filter(pk__gt=after)
        batch = list(rows.order_by("pk").select_for_update(of=("self",))[:batch_size])
        rowkeys.row_ciphers(tenant_id, [link.contact.object_key_id for link in batch])
        for link in batch:
            try:
                value = (link.contact.external_ids or {}).get(link.system)
            except DecryptionError:
                damaged.append(sealed_damage(link.contact))
                continue
            if value is None:
                problem = f"{link.system} id link does not match contact {link.contact_id}"
                damaged.append(Damage(tenant_id, ContactExternalId._meta.db_table, str(link.pk), problem))
                continue
            index = blind.blind_index(tenant_id, f"external_id:{link.system}", value)
            if index != bytes(link.value_index):
                changed += ContactExternalId.objects.filter(pk=link.pk).update(value_index=index)
    return len(batch), changed, (batch[-1].pk if batch else after), damaged


# Every token kind segmentation matches in clinical_tokens and demographic_tokens (custom.<key>
# included: blind.family reads it as "custom"): what `segmentation_tokens_move` recomputes.
SEGMENTATION_FAMILIES = tuple(
    sorted(
        {
            *normalize.CLINICAL_TOKEN_KINDS.values(),
            normalize.PROVIDER_TOKEN_KIND,
            *normalize.DEMOGRAPHIC_FIELDS,
            blind.family(normalize.CUSTOM_TOKEN_PREFIX),
        }
    )
)
_SEGMENTATION_UPDATE = (
    f"UPDATE {Contact._meta.db_table} SET clinical_tokens = %s, demographic_tokens = %s"  # noqa: S608 - the model's table
    " WHERE id = %s AND tenant_id = %s"
)


def segmentation_tokens_move(tenant_id: uuid.UUID, after: object | None, batch_size: int) -> Batch:
    """Contacts holding clinical or demographic tokens (deleted ones kept under a hold included: no
    token stays under the old version) get them recomputed under the version written. Only these
    columns are written (not updated_at: the contact did not change), and only where they differ."""
    damaged: list[Damage] = []
    view = blind.versions(tenant_id)  # one view for every token of the batch
    tokens: dict[tuple[str, str], int] = {}

    def token(tenant, kind: str, value: str) -> int:
        key = (kind, value)
        if key not in tokens:
            tokens[key] = blind.token(tenant, kind, value, state=view)
        return tokens[key]

    with tenant_context(tenant_id), transaction.atomic():
        segmentable = set(
            CustomField.objects.filter(tenant_id=tenant_id, segmentable=True).values_list("key", flat=True)
        )
        read = ("clinical", "demographics", *(("custom_fields",) if segmentable else ()))
        grant = access.Grant("contacts.contact", frozenset(read), None)
        with access.granted(grant), rowkeys.key_scope():
            rows = Contact.objects.filter(tenant_id=tenant_id).filter(
                Q(clinical_tokens__len__gt=0) | Q(demographic_tokens__len__gt=0)
            )
            if after is not None:
                rows = rows.filter(pk__gt=after)
            fields = ("pk", "tenant", "object_key_id", "clinical_tokens", "demographic_tokens", *read)
            batch = list(rows.order_by("pk").only(*fields).select_for_update()[:batch_size])
            rowkeys.row_ciphers(tenant_id, [contact.object_key_id for contact in batch])
            updates = []
            for contact in batch:
                try:
                    columns = normalize.segmentation_columns(
                        tenant_id,
                        demographics=contact.demographics,
                        clinical=contact.clinical,
                        custom=contact.custom_fields if segmentable else None,
                        segmentable_custom=segmentable,
                        token=token,
                    )
                except DecryptionError:
                    damaged.append(sealed_damage(contact))
                    continue
                clinical, demographic = columns["clinical_tokens"], columns["demographic_tokens"]
                if clinical != contact.clinical_tokens or demographic != contact.demographic_tokens:
                    updates.append((clinical, demographic, contact.pk, tenant_id))
            if updates:
                with connection.cursor() as cursor:
                    cursor.executemany(_SEGMENTATION_UPDATE, updates)
    return len(batch), len(updates), (batch[-1].pk if batch else after), damaged
