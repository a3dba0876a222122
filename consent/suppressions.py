"""The suppression list: addresses and contacts that must not receive email, and for which purposes."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from contacts.changes import contacts_changed
from contacts.models import Contact
from contacts.selectors import contact_with_email
from healthmail.actors import Actor
from healthmail.crypto import blind
from healthmail.errors import Conflict, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .evidence import ConsentError
from .models import (
    Suppression,
)

logger = logging.getLogger(__name__)


def suppressions_active(
    *, tenant: Tenant, contact: Contact, reasons: Iterable[str] | None = None
) -> list[Suppression]:
    with tenant_context(tenant):
        query = Suppression.objects.for_tenant(tenant).filter(removed_at__isnull=True)
        if contact.email_index:
            # Every index a suppression of the address may hold (two while an index-key rotation runs).
            wanted = blind.candidates(tenant, "email", contact.email_index, contact.email_index_next)
            query = query.filter(
                Q(contact=contact) | Q(email_index__in=wanted) | Q(email_index_next__in=wanted)
            )
        else:
            query = query.filter(contact=contact)
        if reasons is not None:
            query = query.filter(reason__in=list(reasons))
        return list(query)


def suppression_get(*, tenant: Tenant, suppression_id) -> Suppression:
    """An entry of this tenant (removed or not); another tenant's id is simply not found."""
    with tenant_context(tenant):
        found = Suppression.objects.for_tenant(tenant).filter(pk=suppression_id).first()
    if found is None:
        raise NotFound("No such suppression.", code="not_found")
    return found


@transaction.atomic
def suppression_add(
    *,
    tenant: Tenant,
    actor: Actor,
    reason: str,
    contact: Contact | None = None,
    email: str = "",
    note: str = "",
) -> Suppression:
    """Suppress a contact and/or an address (kept as its blind index only). Adding an entry that is
    already active returns it unchanged."""
    if reason not in Suppression.Reason.values:
        raise ConsentError("Unknown suppression reason.", code="reason_invalid")
    if contact is not None and contact.tenant_id != tenant.pk:
        raise NotFound("No such contact.", code="contact_not_found")
    # The index and, while an index-key rotation fills them in, the next index: both from one
    # view of the rotation's stage (blind.blind_index_pair).
    view = blind.versions(tenant)
    email_index, email_index_next = (
        blind.blind_index_pair(tenant, "email", email, state=view) if email.strip() else (None, None)
    )
    with tenant_context(tenant):
        if contact is None and email_index is not None:
            contact = contact_with_email(tenant=tenant, email=email)
        if contact is not None and email_index is None and contact.email_index:
            email_index, email_index_next = blind.copied(
                tenant, "email", contact.email_index, contact.email_index_next, state=view
            )
        if contact is None and email_index is None:
            raise ConsentError("Give a contact or an email address to suppress.", code="key_required")
        existing = Suppression.objects.for_tenant(tenant).filter(reason=reason, removed_at__isnull=True)
        wanted = blind.lookup(tenant, "email", email) if email.strip() else []
        existing = (
            existing.filter(contact=contact)
            if contact is not None
            else existing.filter(Q(email_index__in=wanted) | Q(email_index_next__in=wanted))
        )
        found = existing.first()
        if found is not None:
            return found
        entry = Suppression.objects.create(
            tenant=tenant,
            contact=contact,
            email_index=email_index,
            email_index_next=email_index_next,
            reason=reason,
            note=note.strip()[:200],
            created_by=actor.reference,
        )
        audit.record(
            actor=actor,
            action="suppression.add",
            target=entry,
            tenant=tenant,
            details={"reason": reason, "contact": str(contact.pk) if contact else None},
        )
        logger.info(
            "consent: suppression added",
            extra={
                "suppression": str(entry.pk),
                "reason": reason,
                "by": actor.kind,
                "has_contact": contact is not None,
            },
        )
        if contact is not None:
            contacts_changed(tenant_id=tenant.pk, contact_ids=[contact.pk])
    return entry


@transaction.atomic
def suppression_remove(*, tenant: Tenant, actor: Actor, suppression: Suppression, reason: str) -> Suppression:
    if not reason.strip():
        raise ConsentError("Say why the entry is removed.", code="reason_required")
    if suppression.tenant_id != tenant.pk:
        raise NotFound("No such suppression.", code="not_found")
    with tenant_context(tenant):
        updated = Suppression.objects.filter(
            pk=suppression.pk, tenant=tenant, removed_at__isnull=True
        ).update(
            removed_at=timezone.now(),
            removed_by=actor.reference,
            removed_reason=reason.strip()[:200],
        )
        if updated != 1:
            raise Conflict("This entry was already removed.", code="already_removed")
        suppression.refresh_from_db()
        audit.record(
            actor=actor,
            action="suppression.remove",
            target=suppression,
            tenant=tenant,
            reason=reason.strip(),
            details={"suppression_reason": suppression.reason},
        )
        logger.info(
            "consent: suppression removed",
            extra={"suppression": str(suppression.pk), "reason": suppression.reason, "by": actor.kind},
        )
        if suppression.contact_id is not None:
            contacts_changed(tenant_id=tenant.pk, contact_ids=[suppression.contact_id])
    return suppression
