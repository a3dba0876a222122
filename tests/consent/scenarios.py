"""Build one contact in a given consent situation (shared by the gate tests)."""

from __future__ import annotations

import datetime
import uuid

from django.utils import timezone

from consent import authorizations, services
from consent.authorization_records import day_end, tenant_today
from consent.models import Authorization, AuthorizationKind, ContactPreference, Purpose
from consent.suppressions import suppression_add
from contacts.models import Contact
from healthmail.tenants.context import tenant_context

from .conftest import evidence, new_contact, new_text, sign, staff_actor

TOPIC_FOR = {
    Purpose.MARKETING: "marketing_newsletters",
    Purpose.RESEARCH: "research",
    Purpose.FUNDRAISING: "fundraising",
}


def topic_for(tenant, purpose: str):
    key = TOPIC_FOR.get(purpose, "marketing_newsletters")
    return services.topics_ensure_system(tenant=tenant)[key]


def _text(tenant, kind: str):
    return authorizations.authorization_text_current(tenant=tenant, kind=kind) or new_text(tenant, kind=kind)


def build(
    tenant,
    *,
    purpose: str = Purpose.MARKETING,
    consent: str | None = None,
    authorization: str | None = None,
    suppressions: tuple[str, ...] = (),
    state: str = "",
    paused: str | None = None,
    deleted: bool = False,
    has_email: bool = True,
    direct: bool = False,
) -> Contact:
    if has_email:
        contact = new_contact(tenant, state=state, direct=direct)
    else:  # written directly: the contacts service refuses a contact with neither email nor external id
        with tenant_context(tenant):
            contact = Contact.objects.create(tenant=tenant, state=state)
    topic = topic_for(tenant, purpose)
    if consent:
        services.consent_record(
            tenant=tenant, contact=contact, topic=topic, kind=consent, evidence=evidence()
        )
    if authorization:
        kind = AuthorizationKind.RESEARCH if purpose == Purpose.RESEARCH else AuthorizationKind.MARKETING
        signed, _ = sign(tenant, contact, _text(tenant, kind), submission_key=uuid.uuid4().hex)
        now = timezone.now()
        with tenant_context(tenant):
            if authorization == "pending":
                Authorization.objects.filter(pk=signed.pk).update(
                    effective_from=now + datetime.timedelta(days=7)
                )
            elif authorization == "expired":  # past its date, before the expiry task has run
                yesterday = tenant_today(tenant) - datetime.timedelta(days=1)
                Authorization.objects.filter(pk=signed.pk).update(
                    expires_on=yesterday, expires_at=day_end(tenant, yesterday)
                )
        if authorization == "revoked":
            authorizations.authorization_revoke(tenant=tenant, authorization=signed, evidence=evidence())
    for reason in suppressions:
        suppression_add(tenant=tenant, actor=staff_actor(), reason=reason, contact=contact)
    if paused:
        days = 10 if paused == "future" else -1
        with tenant_context(tenant):
            ContactPreference.objects.create(
                tenant=tenant,
                contact=contact,
                paused_until=tenant_today(tenant) + datetime.timedelta(days=days),  # pauses end locally
            )
    if deleted:
        with tenant_context(tenant):
            Contact.objects.filter(pk=contact.pk).update(deleted_at=timezone.now())
    return contact
