"""Incident test set-up: officers, patients with States, and audit events that name them."""

from __future__ import annotations

import datetime

from django.utils import timezone

from audit import services as audit
from contacts.models import Contact
from contacts.services import ContactInput, contact_upsert_many
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from incidents import services
from tests.factories import MembershipFactory


def officer(tenant):
    return MembershipFactory(tenant=tenant, role=Role.COMPLIANCE_OFFICER).user


def patients(
    tenant,
    n: int,
    *,
    state: str = "TX",
    email: bool = True,
    label: str = "p",
    domain: str = "patients.example",
) -> list[Contact]:
    inputs = [
        ContactInput(
            email=f"{label}{i}@{domain}" if email else None,
            external_ids=None if email else {"mrn": f"MRN-{label}-{i}"},
            postal_address={"line1": "1 Test Way", "city": "Town", "state": state, "zip": "75001"},
        )
        for i in range(n)
    ]
    results = contact_upsert_many(tenant=tenant, actor=Actor.system("tests"), inputs=inputs, source="test")
    with tenant_context(tenant):
        return list(Contact.objects.filter(pk__in=[r.contact_id for r in results]).order_by("pk"))


def read_event(tenant, user, contacts, *, action: str = "phi.read"):
    """An audit event as a PHI read of `contacts` by `user` (or a system) writes it (now: the trail
    refuses changes, so events are never backdated; windows are chosen around them)."""
    actor = Actor.for_user(user) if not isinstance(user, Actor) else user
    event = audit.record(
        actor=actor,
        action=action,
        target=("contacts.contact", ""),
        tenant=tenant,
        details={"purpose": "test"},
        contacts=[c.pk for c in contacts],
    )
    return event


def new_incident(tenant, user, **overrides):
    values = {
        "title": "Records read by a former employee",
        "description": "A former employee's account read patient records after leaving.",
        "how_discovered": "Break-glass alert",
        "discovered_on": timezone.localdate() - datetime.timedelta(days=3),
    }
    values.update(overrides)
    return services.incident_open(tenant=tenant, user=user, role=Role.COMPLIANCE_OFFICER, **values)


FACTORS = {
    "factor_nature": "Names, email addresses and appointment types of patients.",
    "factor_recipient": "A former employee without any obligation to protect the data.",
    "factor_acquired": "The audit trail shows the records were opened and viewed.",
    "factor_mitigated": "Account disabled; no confirmation the data was destroyed.",
}
LETTER = {
    "phi_types": "Names, email addresses and appointment types",
    "steps_for_individuals": "Watch for messages claiming to come from us.",
    "what_we_are_doing": "We disabled the account and review access every week.",
    "contact_procedures": "Call 1-800-555-0100 toll free or write to privacy@clinic.example.",
}


def decided_breach(tenant, contacts, **overrides):
    """An incident whose affected individuals are `contacts`, decided a breach and signed off."""
    from incidents import affected

    first, second = officer(tenant), officer(tenant)
    read_event(tenant, Actor.system("relay"), contacts)
    incident = new_incident(tenant, first, **overrides)
    now, hour = timezone.now(), datetime.timedelta(hours=1)
    who = {"tenant": tenant, "role": Role.COMPLIANCE_OFFICER, "incident": incident}
    affected.affected_derive(user=first, since=now - hour, until=now + hour, **who)
    services.risk_assess(user=first, factors=FACTORS, probability="not_low", **who)
    services.decision_propose(
        user=first, decision="breach", reason="Viewed by an unauthorized person.", **who
    )
    services.decision_sign_off(user=second, **who)
    return services.letter_content_set(user=first, content=LETTER, **who)
