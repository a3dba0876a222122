"""Campaign test helpers: people in each role, synthetic contacts written through the real upsert
(encrypted addresses), opt-ins, a verified sender domain, a template, a segment and a campaign."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from dataclasses import dataclass

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Goal, Template
from campaigns.services import campaigns as campaign_services
from campaigns.services import workflow
from consent import services as consent
from consent.models import Source
from contacts.models import Contact
from contacts.services import contact_upsert_many
from contacts.synthetic import synthetic_contacts
from delivery.models import SenderDomain
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.factories import (
    TEMPLATE_HTML,
    CampaignFactory,
    ConsentFactory,
    MembershipFactory,
    TemplateFactory,
    everyone_segment,
)

GOOD_HTML = TEMPLATE_HTML


@dataclass
class Person:
    user: object
    role: str

    @property
    def actor(self) -> Actor:
        return Actor.for_user(self.user)


def person(tenant, role: str) -> Person:
    membership = MembershipFactory(tenant=tenant, role=role)
    return Person(membership.user, role)


@pytest.fixture
def team(tenant_a):
    """A marketer, two compliance officers, a clinical reviewer and an admin of tenant A."""
    return {
        "marketer": person(tenant_a, Role.MARKETER),
        "marketer2": person(tenant_a, Role.MARKETER),
        "compliance": person(tenant_a, Role.COMPLIANCE_OFFICER),
        "clinical": person(tenant_a, Role.CLINICAL_REVIEWER),
        "admin": person(tenant_a, Role.TENANT_ADMIN),
    }


def verified_domain(tenant, domain: str = "mail.clinic.example.org") -> SenderDomain:
    with tenant_context(tenant):
        return SenderDomain.objects.create(
            tenant=tenant, domain=domain, status=SenderDomain.Status.VERIFIED, verified_at=timezone.now()
        )


def contacts(tenant, count: int, *, seed: int = 3, state: str = "TX") -> list[uuid.UUID]:
    """Synthetic adults in one state (no state rule, no minor rules interfere unless a test asks)."""
    inputs = [
        dataclasses.replace(
            person,
            postal_address={**person.postal_address, "state": state, "zip": "75001"},
            birth_date=datetime.date(1980, 1, 1 + index % 28),
        )
        for index, person in enumerate(synthetic_contacts(count=count, seed=seed))
    ]
    results = contact_upsert_many(tenant=tenant, actor=Actor.system("tests"), inputs=inputs, source="test")
    return [r.contact_id for r in results]


def opt_in(tenant, contact_ids, topic_key: str = "marketing_newsletters") -> None:
    topic = consent.topic_by_key(tenant=tenant, key=topic_key)
    with tenant_context(tenant):
        people = list(Contact.objects.filter(pk__in=list(contact_ids)))
    for contact in people:
        ConsentFactory(tenant=tenant, contact=contact, topic=topic, source=Source.IMPORT)


def template(
    tenant,
    actor,
    *,
    name: str = "Flu season",
    html: str = GOOD_HTML,
    subject: str = "Flu shots are here",
    text: str = "Flu shots are here. Book: https://clinic.example.org/book",
    kind=Template.Kind.MARKETING,
):
    return TemplateFactory(
        tenant=tenant, actor=actor, name=name, kind=kind, subject=subject, html=html, text=text
    )


def segment(tenant, definition=None, name: str = "Everyone"):
    return everyone_segment(tenant, name=name, definition=definition)


def campaign_input(
    tenant, *, template_obj, segment_obj, domain, **overrides
) -> campaign_services.CampaignInput:
    topic = consent.topic_by_key(tenant=tenant, key="marketing_newsletters")
    values = {
        "name": f"Flu campaign {uuid.uuid4().hex[:6]}",
        "goal": Goal.AWARENESS,
        "purpose": "marketing",
        "sender_name": "Synthetic Clinic",
        "topic_id": topic.pk,
        "sender_domain_id": domain.pk if domain else None,
        "segment_id": segment_obj.pk if segment_obj else None,
        "template_id": template_obj.pk if template_obj else None,
    }
    values.update(overrides)
    return campaign_services.CampaignInput(**values)


@pytest.fixture
def ready(tenant_a, team):
    """Everything a marketer needs for a compliant campaign in tenant A (no contacts yet)."""
    marketer = team["marketer"]
    return {
        "domain": verified_domain(tenant_a),
        "template": template(tenant_a, marketer.actor),
        "segment": segment(tenant_a),
    }


def draft(tenant, team, ready, **overrides) -> Campaign:
    return CampaignFactory(
        tenant=tenant,
        actor=team["marketer"].actor,
        template=ready["template"],
        segment=ready["segment"],
        sender_domain=ready["domain"],
        **overrides,
    )


def approved(tenant, team, ready, **overrides) -> Campaign:
    campaign = draft(tenant, team, ready, **overrides)
    campaign = workflow.campaign_submit(tenant=tenant, actor=team["marketer"].actor, campaign=campaign)
    compliance = team["compliance"]
    campaign = workflow.campaign_approve(
        tenant=tenant, actor=compliance.actor, role=compliance.role, campaign=campaign, kind="compliance"
    )
    if campaign.uses_phi:
        clinical = team["clinical"]
        campaign = workflow.campaign_approve(
            tenant=tenant, actor=clinical.actor, role=clinical.role, campaign=campaign, kind="clinical"
        )
    return campaign


def scheduled(tenant, team, ready, *, confirm_empty: bool = False, **overrides) -> Campaign:
    campaign = approved(tenant, team, ready, **overrides)
    return workflow.campaign_schedule(
        tenant=tenant, actor=team["marketer"].actor, campaign=campaign, confirm_empty=confirm_empty
    )
