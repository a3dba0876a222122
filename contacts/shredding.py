"""Crypto-shredding a contact: its encrypted fields, blind indexes, tokens and external-id links
are cleared and its own key (healthmail/crypto/rowkeys.py) is destroyed, so the copy of the row in
any earlier backup opens with nothing once the epoch key wrapping that key is destroyed (the next
epoch rotation, or `manage.py rotate_keys --epochs` now). The row id stays: consent evidence,
messages and events refer to it.

Deleting a contact shreds it at once, unless a higher app keeps it (retention: a legal hold covers
it); retention's disposal shreds it when the hold is gone. Both use `contacts_shred`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from healthmail.crypto import rowkeys
from healthmail.crypto.fields import EncryptedFieldMixin
from healthmail.tenants.context import tenant_context

from .models import Contact, ContactExternalId

# A contact shredded in place: what each column holds afterwards.
TOMBSTONE: dict[str, Any] = {
    **{f.name: None for f in Contact._meta.concrete_fields if isinstance(f, EncryptedFieldMixin)},
    "email_index": None,
    "email_index_next": None,
    "phone_index": None,
    "demographic_tokens": [],
    "clinical_tokens": [],
    "tag_tokens": [],
    "tag_tokens_next": None,
    "sensitive_categories": [],
    "birth_year": None,
    "age_90_or_older": False,
    "zip3": "",
    "state": "",
    "gender": "",
    "language": "",
    "journey_stage": "",
    "is_minor": False,
    "object_key_id": None,
}

# Higher apps say when a deleted contact must keep its data for now (True: keep it).
Keeper = Callable[[Contact], bool]
_keepers: list[Keeper] = []


def contact_keeper_register(keeper: Keeper) -> None:
    if keeper not in _keepers:
        _keepers.append(keeper)


def contact_kept(contact: Contact) -> bool:
    return any(keeper(contact) for keeper in _keepers)


@dataclass(frozen=True)
class Shredded:
    """What the database did: contact rows cleared, key rows deleted, external-id links deleted."""

    contacts: int
    keys: int
    links: int


def contacts_shred(*, tenant_id: uuid.UUID, contact_ids: Sequence[uuid.UUID | str]) -> Shredded:
    """Shred these contacts of one tenant (inside the caller's transaction)."""
    with tenant_context(tenant_id):
        rows = Contact.objects.filter(tenant_id=tenant_id, pk__in=list(contact_ids))
        key_ids = list(rows.exclude(object_key_id=None).values_list("object_key_id", flat=True))
        cleared = rows.update(**TOMBSTONE)
        links, _ = ContactExternalId.objects.filter(
            tenant_id=tenant_id, contact_id__in=list(contact_ids)
        ).delete()
    return Shredded(cleared, rowkeys.row_keys_shred(tenant_id, key_ids), links)
