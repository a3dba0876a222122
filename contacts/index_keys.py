"""The contacts' re-indexers for index-key rotation (healthmail/crypto/index_rotation.py): phone
indexes (from each contact's own phone) and external-id links (from the id its contact holds).

Each batch locks the rows it reads (FOR UPDATE: an upsert of the same contact waits, so an index is
never computed from a stale read), recomputes the index under the version being written and writes
only the rows whose index differs, so a rerun writes nothing already moved. A row whose value does
not decrypt, or a link naming an id its contact does not hold, is reported as damaged and left as
it is. Values are read as the system and never leave this module.
"""

from __future__ import annotations

import uuid

from django.db import transaction

from healthmail.crypto import access, blind, rowkeys
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.integrity import Damage, sealed_damage
from healthmail.tenants.context import tenant_context

from .models import Contact, ContactExternalId

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
