"""Contact reads. Finding a contact never scans PHI: search goes through blind indexes only.

Showing a contact is a PHI read: `contact_records()` opens the fields inside one audited
`phi_access` per page (ids, fields and purpose in the event), masked or not — even a masked list
decrypts to build its hints, and being on a patient list is PHI in itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import uuid
from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet

from audit import services as audit
from audit.phi import phi_access
from healthmail.actors import Actor
from healthmail.crypto import blind, rowkeys
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.integrity import damage_report, sealed_damage
from healthmail.crypto.masking import HIDDEN, mask
from healthmail.errors import ApplicationError, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import binding
from .models import Contact, ContactExternalId, CustomField, JourneyStage, SensitiveCategory
from .services import external_id_indexes

LIST_FIELDS = ("email", "first_name", "last_name", "phone", "birth_date")
DETAIL_FIELDS = (*LIST_FIELDS, "postal_address", "external_ids", "demographics", "custom_fields")
CLINICAL_FIELDS = ("clinical",)
# The de-identified demographics shown even in masked views (they are plaintext columns anyway).
COARSE_DEMOGRAPHICS = ("gender", "preferred_language")


def contact_list(*, tenant: Tenant, search: str = "") -> QuerySet[Contact]:
    """Live contacts, newest first; `search` is an exact email, phone or external id (any system,
    or `system:id`) matched through its blind index, each match confirmed by the row's own value
    (binding.py). Nothing else is searchable."""
    contacts = Contact.objects.filter(tenant=tenant, deleted_at__isnull=True).order_by("-created_at", "-id")
    search = search.strip()
    if not search:
        return contacts
    if "@" in search:
        return contacts.filter(pk__in=_confirmed_ids(contacts, "email", search, tenant))
    found = _external_id_matches(tenant, search)
    digits = re.sub(r"\D", "", search)
    if 7 <= len(digits) <= 15 and re.fullmatch(r"[0-9+().\-\s]+", search):
        found += _confirmed_ids(contacts, "phone", search, tenant)
    return contacts.filter(pk__in=found)


def _confirmed_ids(contacts: QuerySet[Contact], kind: str, value: str, tenant: Tenant) -> list[uuid.UUID]:
    indexes = blind.lookup(tenant, kind, value)
    candidates = contacts.filter(**{f"{kind}_index__in": indexes})
    return [
        contact.pk
        for contact in binding.contacts_confirmed(candidates, kind, indexes, found_by="contact search")
    ]


def _external_id_matches(tenant: Tenant, search: str) -> list[uuid.UUID]:
    links = ContactExternalId.objects.filter(
        tenant=tenant, value_index__in=_external_id_indexes(tenant, search), contact__deleted_at__isnull=True
    ).select_related("contact")
    return [
        link.contact_id
        for link in links
        if binding.link_confirmed(link, link.contact, found_by="contact search")
    ]


def _external_id_indexes(tenant: Tenant, search: str) -> list[bytes]:
    system, _, value = search.partition(":")
    if value and re.fullmatch(r"[a-zA-Z0-9_.-]{1,32}", system):
        return external_id_indexes(tenant, system.lower(), value.strip())
    systems = ContactExternalId.objects.filter(tenant=tenant).values_list("system", flat=True).distinct()
    return [index for name in systems for index in external_id_indexes(tenant, name, search)]


def contact_get(*, tenant: Tenant, contact_id: uuid.UUID | str) -> Contact:
    """A live contact of this tenant; anything else (foreign, deleted, malformed) is NotFound."""
    try:
        contact_id = uuid.UUID(str(contact_id))
    except ValueError:
        raise NotFound("No such contact.") from None
    contact = Contact.objects.filter(tenant=tenant, pk=contact_id, deleted_at__isnull=True).first()
    if contact is None:
        raise NotFound("No such contact.")
    return contact


LOOKUP_ACTION = "phi.lookup"


def _identifier_kind(identifier: str) -> str:
    if "@" in identifier:
        return "email"
    digits = re.sub(r"\D", "", identifier)
    if 7 <= len(digits) <= 15 and re.fullmatch(r"[0-9+().\-\s]+", identifier):
        return "phone or external id"
    return "external id"


def contact_lookup(*, tenant: Tenant, actor: Actor, identifier: str, purpose: str) -> Contact:
    """The one live contact an exact email, phone, MRN or external id (`system:id`) names, through
    the blind indexes. Finding a person is itself a PHI lookup: audited (which contact, the kind of
    identifier, why; never the identifier). No match or several matches find nobody."""
    identifier = identifier.strip()
    if not identifier:
        raise NotFound("Enter an exact email, phone, MRN or external id.")
    with tenant_context(tenant):
        found = list(contact_list(tenant=tenant, search=identifier)[:2])
    kind = _identifier_kind(identifier)
    audit.record(
        actor=actor,
        action=LOOKUP_ACTION,
        target=found[0] if len(found) == 1 else None,
        outcome="success" if len(found) == 1 else "failure",
        tenant=tenant,
        details={"identifier_kind": kind, "purpose": purpose, "matches": min(len(found), 2)},
    )
    if not found:
        raise NotFound("No contact has exactly this email, phone, MRN or external id.")
    if len(found) > 1:
        raise ApplicationError(
            "Several contacts share this identifier: use an MRN or external id (system:id).", code="ambiguous"
        )
    return found[0]


def contact_find(
    *,
    tenant: Tenant,
    contact_id: uuid.UUID | None = None,
    external_system: str = "",
    external_id: str = "",
    email: str = "",
) -> Contact:
    """A live contact named the way integrations name people: by id, by EHR/CRM id, or by address."""
    if contact_id is not None:
        return contact_get(tenant=tenant, contact_id=contact_id)
    if external_system and external_id:
        link = (
            ContactExternalId.objects.filter(
                tenant=tenant,
                system=external_system,
                value_index__in=external_id_indexes(tenant, external_system, external_id),
            )
            .select_related("contact")
            .first()
        )
        if link is None or link.contact.deleted_at is not None:
            raise NotFound("No such contact.")
        if not binding.link_confirmed(link, link.contact, found_by="contact lookup"):
            raise NotFound("No such contact.")
        return link.contact
    if email:
        found = contact_with_email(tenant=tenant, email=email)
        if found is None:
            raise NotFound("No such contact.")
        return found
    raise NotFound("Name the contact: contact_id, external_id or email.")


def contact_with_email(*, tenant: Tenant, email: str) -> Contact | None:
    """The live contact whose stored address is this one (its index confirmed by its value)."""
    indexes = blind.lookup(tenant, "email", email)
    with tenant_context(tenant):
        candidates = Contact.objects.filter(tenant=tenant, email_index__in=indexes, deleted_at__isnull=True)
        confirmed = binding.contacts_confirmed(candidates, "email", indexes, found_by="contact lookup")
    return confirmed[0] if confirmed else None


@dataclasses.dataclass(frozen=True)
class ReadScope:
    """What a reader may see: unmasked identity or hints only; clinical values or nothing."""

    unmasked: bool
    clinical: bool
    purpose: str

    def fields(self, detail: bool) -> list[str]:
        fields = list(DETAIL_FIELDS if detail else LIST_FIELDS)
        return fields + list(CLINICAL_FIELDS) if detail and self.clinical else fields


def contact_records(
    *, actor: Actor, tenant: Tenant, contacts: Sequence[Contact], scope: ReadScope, detail: bool = False
) -> list[dict[str, Any]]:
    """Plain dicts of the contacts as this reader may see them; one audit event for the lot."""
    fields = scope.fields(detail)
    with rowkeys.key_scope():
        rowkeys.row_ciphers(tenant.pk, [contact.object_key_id for contact in contacts])  # one query
        with phi_access(
            actor=actor, tenant=tenant, objects=list(contacts), fields=fields, purpose=scope.purpose
        ):
            return [_record_or_damaged(contact, scope, detail) for contact in contacts]


def _record_or_damaged(contact: Contact, scope: ReadScope, detail: bool) -> dict[str, Any]:
    """One contact's record; a contact whose data does not decrypt is shown as damaged (the rest of
    the page or API answer is unaffected) and raises a critical alert naming it."""
    try:
        return _record(contact, scope, detail)
    except DecryptionError:
        damage_report(sealed_damage(contact), found_by=scope.purpose)
        return _damaged(contact, detail)


def _damaged(contact: Contact, detail: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": contact.pk,
        "damaged": True,
        "email": "",
        "name": "",
        "phone": "",
        "birth_date": "",
        "masked": True,
        "journey_stage": contact.journey_stage,
        "journey_stage_label": JourneyStage(contact.journey_stage).label if contact.journey_stage else "",
        "state": contact.state,
        "is_minor": contact.is_minor,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
    }
    if detail:
        record.update(
            postal_address={},
            external_ids={},
            demographics={},
            custom_fields=None,
            clinical=None,
            sensitive_categories=None,
            birth_year=contact.birth_year,
            age_90_or_older=contact.age_90_or_older,
            zip3=contact.zip3,
        )
    return record


UNMASK_MIN_REASON = 15
UNMASK_PURPOSE = "unmask"


def contact_unmasked_read(*, actor: Actor, tenant: Tenant, contact: Contact, reason: str) -> dict[str, Any]:
    """One contact's identity unmasked for a reader whose role masks it by default (tenant admins):
    only with a reason, recorded with the read (`contact.unmask`) and the read itself (`phi.read`,
    purpose "unmask"). Clinical values stay hidden: unmasking is about who, not what."""
    reason = reason.strip()
    if len(reason) < UNMASK_MIN_REASON:
        raise ApplicationError(
            f"Say why you need to see this person's details (at least {UNMASK_MIN_REASON} characters).",
            code="reason",
        )
    audit.record(actor=actor, action="contact.unmask", target=contact, tenant=tenant, reason=reason[:500])
    scope = ReadScope(unmasked=True, clinical=False, purpose=UNMASK_PURPOSE)
    (record,) = contact_records(actor=actor, tenant=tenant, contacts=[contact], scope=scope, detail=True)
    return record


def _changed_at(contact: Contact, scope: ReadScope) -> datetime.datetime | None:
    """When the row last changed, to a clinical reader only: to anyone else it would tell whether a
    diagnosis they wrote was the stored one (no change) or not, a write oracle through the read path."""
    return contact.updated_at if scope.clinical else None


def _record(contact: Contact, scope: ReadScope, detail: bool) -> dict[str, Any]:
    first, last = contact.first_name or "", contact.last_name or ""
    name = f"{first} {last}".strip()
    record: dict[str, Any] = {
        "id": contact.pk,
        "email": contact.email if scope.unmasked else mask(contact.email, "email"),
        "name": name if scope.unmasked else mask(name, "name"),
        "phone": contact.phone if scope.unmasked else mask(contact.phone, "phone"),
        "birth_date": contact.birth_date if scope.unmasked else _age(contact),
        "masked": not scope.unmasked,
        "damaged": False,
        "journey_stage": contact.journey_stage,
        "journey_stage_label": JourneyStage(contact.journey_stage).label if contact.journey_stage else "",
        "state": contact.state,
        "is_minor": contact.is_minor,
        "created_at": contact.created_at,
        "updated_at": _changed_at(contact, scope),
    }
    if scope.unmasked:
        record["first_name"], record["last_name"] = contact.first_name, contact.last_name
    if not detail:
        return record
    demographics = contact.demographics or {}
    address = contact.postal_address or {}
    record.update(
        postal_address=address if scope.unmasked else {"state": contact.state, "zip3": contact.zip3},
        external_ids=contact.external_ids
        if scope.unmasked
        else dict.fromkeys(contact.external_ids or {}, HIDDEN),
        demographics=demographics
        if scope.unmasked
        else {key: demographics[key] for key in COARSE_DEMOGRAPHICS if key in demographics},
        custom_fields=contact.custom_fields if scope.unmasked else None,
        # Sensitive flags and clinical values disclose diagnoses: only for clinical readers.
        clinical=(contact.clinical or {}) if scope.clinical else None,
        sensitive_categories=[SensitiveCategory(c).label for c in contact.sensitive_categories]
        if scope.clinical
        else None,
        birth_year=contact.birth_year,
        age_90_or_older=contact.age_90_or_older,
        zip3=contact.zip3,
    )
    return record


def _age(contact: Contact) -> str:
    """An age band instead of the date; the folded 90+ flag wins (the band is computed today)."""
    if not contact.birth_date:
        return ""
    return "90 or older" if contact.age_90_or_older else mask(contact.birth_date, "birth_date")


def custom_field_list(*, tenant: Tenant) -> QuerySet[CustomField]:
    return CustomField.objects.filter(tenant=tenant).order_by("label")


def contact_lookup_many(
    *, tenant: Tenant, actor: Actor, identifiers: Sequence[str], purpose: str
) -> tuple[uuid.UUID, ...]:
    """`contact_lookup` for each exact identifier (one audited lookup each); the first that finds
    nobody, or several people, stops with its line number (never the identifier itself)."""
    found: dict[uuid.UUID, None] = {}
    for line, identifier in enumerate(identifiers, start=1):
        try:
            contact = contact_lookup(tenant=tenant, actor=actor, identifier=identifier, purpose=purpose)
        except ApplicationError as error:
            raise type(error)(f"Patient {line}: {error.message}", code=error.code) from None
        found[contact.pk] = None
    return tuple(found)


def contact_lookup_id(*, tenant: Tenant, actor: Actor, identifier: str, purpose: str) -> uuid.UUID:
    """`contact_lookup` for lower layers (audit) that name people by id only."""
    return contact_lookup(tenant=tenant, actor=actor, identifier=identifier, purpose=purpose).pk
