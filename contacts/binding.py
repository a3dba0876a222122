"""A blind index finds candidate rows; only the row's own value confirms that it is the right one.

Index columns (email, phone, external-id links) are plain HMACs beside the ciphertext: nothing binds
them to their row, so an index copied or swapped in the database would send a lookup or an upsert to
another patient. Every use of a row found by an index first recomputes the index from the row's
decrypted value and keeps the row only when both agree. The comparison is made as the system and
discloses nothing the index match itself would not (found or not found), so it needs no audited read.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterable, Iterator

from healthmail.crypto import access, blind
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.integrity import Damage, damage_report, sealed_damage
from healthmail.tenants.context import tenant_context

from .models import Contact, ContactExternalId

# kind of index → the encrypted column whose value it must be the index of
_COLUMNS = {"email": "email", "phone": "phone"}
_GRANT_FIELDS = frozenset({"email", "phone", "external_ids"})


def _value(contact: Contact, kind: str) -> str | None:
    if kind.startswith("external_id:"):
        return (contact.external_ids or {}).get(kind.removeprefix("external_id:"))
    return getattr(contact, _COLUMNS[kind])


def index_confirmed(contact: Contact, kind: str, index: bytes, *, found_by: str = "") -> bool:
    """Whether `index` (of `kind`: email, phone, external_id:<system>) is the index of this contact's
    own stored value. A value that cannot be decrypted confirms nothing. With `found_by`, a denial
    is reported as damage (a critical alert naming the row)."""
    grant = access.Grant("contacts.contact", _GRANT_FIELDS, frozenset({str(contact.pk)}))
    try:
        with access.granted(grant):
            value = _value(contact, kind)
    except DecryptionError:
        if found_by:
            damage_report(sealed_damage(contact), found_by=found_by)
        return False
    # Any version the value may be indexed under (two while an index-key rotation runs).
    if value is not None and any(
        hmac.compare_digest(own, bytes(index)) for own in blind.lookup(contact.tenant_id, kind, value)
    ):
        return True
    if found_by:
        damage_report(_mismatch(contact, kind), found_by=found_by)
    return False


def _mismatch(contact: Contact, kind: str) -> Damage:
    table = Contact._meta.db_table
    return Damage(contact.tenant_id, table, str(contact.pk), f"{kind} index does not match its row")


def contacts_confirmed(
    contacts: Iterable[Contact], kind: str, indexes: Collection[bytes], *, found_by: str
) -> list[Contact]:
    """The contacts, found by one of `indexes` (a lookup's), whose stored index is one of them and
    is confirmed by their own value; the others are reported."""
    wanted = {bytes(index) for index in indexes}
    confirmed = []
    for contact in contacts:
        stored = getattr(contact, f"{kind}_index")
        if stored is not None and bytes(stored) in wanted:
            if index_confirmed(contact, kind, bytes(stored), found_by=found_by):
                confirmed.append(contact)
    return confirmed


def link_confirmed(link: ContactExternalId, contact: Contact, *, found_by: str = "") -> bool:
    """Whether an external-id link row really names an id held by the contact it points to."""
    return link.contact_id == contact.pk and index_confirmed(
        contact, f"external_id:{link.system}", bytes(link.value_index), found_by=found_by
    )


def damaged_bindings(tenant_id) -> Iterator[Damage]:
    """Every contact whose email or phone index, or external-id link, its own value does not
    confirm (registered with the integrity scan). Rows that do not decrypt at all are the scan's
    own finding, not repeated here."""
    with tenant_context(tenant_id):
        contacts = Contact.objects.filter(tenant_id=tenant_id).exclude(email_index=None, phone_index=None)
        for contact in contacts.iterator(chunk_size=500):
            for kind in ("email", "phone"):
                index = getattr(contact, f"{kind}_index")
                if index is not None and _decrypts(contact) and not index_confirmed(contact, kind, index):
                    yield _mismatch(contact, kind)
        links = ContactExternalId.objects.filter(tenant_id=tenant_id).select_related("contact")
        for link in links.iterator(chunk_size=500):
            if _decrypts(link.contact) and not link_confirmed(link, link.contact):
                yield Damage(
                    tenant_id,
                    ContactExternalId._meta.db_table,
                    str(link.pk),
                    f"{link.system} id link does not match contact {link.contact_id}",
                )


def _decrypts(contact: Contact) -> bool:
    grant = access.Grant("contacts.contact", _GRANT_FIELDS, frozenset({str(contact.pk)}))
    try:
        with access.granted(grant):
            contact.email, contact.phone, contact.external_ids  # noqa: B018 - decrypting is the check
    except DecryptionError:
        return False
    return True
