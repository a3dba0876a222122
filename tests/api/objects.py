"""Objects of a tenant made for the isolation tests: each builder takes (tenant, issue_key) and
returns the id of a new object of that tenant (or a body naming one), for the API's BOLA matrix
(test_bola.py), the FHIR matrix and the web routes' isolation test (tests/isolation)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from healthmail.accounts.models import ApiKey
from healthmail.tenants.context import tenant_context
from tests.factories import ContactFactory


def api_key_id(tenant, issue_key) -> uuid.UUID:
    prefix = issue_key(tenant=tenant, scopes=["contacts:read"]).split("_")[1]
    with tenant_context(tenant):
        return ApiKey.objects.get(prefix=prefix).pk


def contact_id(tenant, issue_key) -> uuid.UUID:
    return ContactFactory(tenant=tenant, email=f"bola.{uuid.uuid4().hex[:8]}@example.org").pk


def webhook_delivery_id(tenant, issue_key) -> uuid.UUID:
    from delivery.webhooks.services import endpoint_get, webhook_test_send
    from healthmail.actors import Actor
    from healthmail.tenants.context import tenant_context

    endpoint_id = webhook_endpoint_id(tenant, issue_key)
    with tenant_context(tenant):
        endpoint = endpoint_get(tenant=tenant, endpoint_id=endpoint_id)
    return webhook_test_send(tenant=tenant, actor=Actor.system("tests"), endpoint=endpoint).pk


def suppression_id(tenant, issue_key) -> uuid.UUID:
    from consent.suppressions import suppression_add
    from healthmail.actors import Actor

    return suppression_add(
        tenant=tenant,
        actor=Actor.system("tests"),
        reason="manual",
        email=f"bola.{uuid.uuid4().hex[:8]}@example.org",
    ).pk


def template_id(tenant, issue_key) -> uuid.UUID:
    from healthmail.accounts.roles import Role
    from tests.campaigns.conftest import person, template

    return template(tenant, person(tenant, Role.MARKETER).actor).pk


def template_with_spanish_id(tenant, issue_key) -> uuid.UUID:
    """A template with a second language (es) that can be removed."""
    from campaigns.services.templates import ContentInput, template_update
    from healthmail.accounts.roles import Role
    from tests.campaigns.conftest import person, template

    marketer = person(tenant, Role.MARKETER).actor
    saved = template(tenant, marketer, name=f"t {uuid.uuid4().hex[:6]}")
    template_update(
        tenant=tenant,
        actor=marketer,
        template=saved,
        content=ContentInput("es", "Vacunas", "", "<p>Hola</p>"),
    )
    return saved.pk


def campaign_id(tenant, issue_key) -> uuid.UUID:
    from campaigns.services.campaigns import campaign_create
    from healthmail.accounts.roles import Role
    from tests.campaigns.conftest import campaign_input, person, segment, template

    marketer = person(tenant, Role.MARKETER).actor
    data = campaign_input(
        tenant, template_obj=template(tenant, marketer), segment_obj=segment(tenant), domain=None
    )
    return campaign_create(tenant=tenant, actor=marketer, data=data).pk


def campaign_in(tenant, stage: str) -> uuid.UUID:
    """A campaign of `tenant` at `stage` (draft, in_review, approved, scheduled, sending, paused),
    through the services."""
    from campaigns.services import launch, workflow
    from healthmail.accounts.roles import Role
    from tests.campaigns.conftest import (
        approved,
        contacts,
        draft,
        opt_in,
        person,
        segment,
        template,
        verified_domain,
    )

    team = {role: person(tenant, role) for role in (Role.MARKETER, Role.COMPLIANCE_OFFICER)}
    team = {"marketer": team[Role.MARKETER], "compliance": team[Role.COMPLIANCE_OFFICER]}
    ready = {
        "domain": verified_domain(tenant, f"mail{uuid.uuid4().hex[:6]}.clinic.example.org"),
        "template": template(tenant, team["marketer"].actor, name=f"t {uuid.uuid4().hex[:6]}"),
        "segment": segment(tenant, name=f"s {uuid.uuid4().hex[:6]}"),
    }
    if stage == "draft":
        return draft(tenant, team, ready).pk
    if stage == "in_review":
        campaign = draft(tenant, team, ready)
        return workflow.campaign_submit(tenant=tenant, actor=team["marketer"].actor, campaign=campaign).pk
    campaign = approved(tenant, team, ready)
    if stage == "approved":
        return campaign.pk
    opt_in(tenant, contacts(tenant, 1, seed=int(uuid.uuid4().int % 10_000)))
    actor = team["marketer"].actor
    campaign = workflow.campaign_schedule(tenant=tenant, actor=actor, campaign=campaign)
    if stage == "scheduled":
        return campaign.pk
    launch.campaign_launch(tenant=tenant, campaign_id=campaign.pk)
    if stage == "paused":
        workflow.campaign_pause(tenant=tenant, actor=actor, campaign=campaign)
    return campaign.pk


def template_version_id(tenant, issue_key) -> uuid.UUID:
    from campaigns.services.templates import template_freeze
    from healthmail.accounts.roles import Role
    from tests.campaigns.conftest import person, template

    marketer = person(tenant, Role.MARKETER).actor
    return template_freeze(tenant=tenant, actor=marketer, template=template(tenant, marketer)).pk


def journey_id(tenant, issue_key) -> uuid.UUID:
    from tests.journeys.conftest import active_journey

    return active_journey(tenant).pk


def template_content(tenant, issue_key) -> dict:
    return {"language": "en", "subject": "Updated", "html": "<p>Updated</p>"}


def removal_reason(tenant, issue_key) -> dict:
    return {"reason": "asked to receive mail again"}


def own_contact_body(tenant, issue_key) -> dict:
    """A body naming a contact of the caller's tenant: only the id in the path varies."""
    return {"contact_id": str(contact_id(tenant, issue_key))}


@dataclass(frozen=True)
class Operation:
    scopes: list[str] | None  # what the view declares; None: refused to every key by design
    make_object: Callable | None = None  # (tenant, issue_key) -> id of an object of that tenant
    make_body: Callable | None = None  # (caller's tenant, issue_key) -> a valid JSON body, if one is needed
    # Path parameters other than the object's id: (name, value), e.g. ("language", "es").
    path_values: tuple[tuple[str, str], ...] = ()


def segment_id(tenant, issue_key) -> uuid.UUID:
    from healthmail.actors import Actor
    from segmentation.services import segment_create

    segment = segment_create(
        tenant=tenant,
        actor=Actor.system("tests"),
        name=f"bola {uuid.uuid4().hex[:6]}",
        definition={"all": []},
    )
    return segment.pk


def webhook_endpoint_id(tenant, issue_key) -> uuid.UUID:
    from django.test import override_settings

    from delivery.webhooks.services import endpoint_create
    from healthmail.actors import Actor

    with override_settings(WEBHOOK_ALLOW_PRIVATE_TARGETS=True):
        created = endpoint_create(
            tenant=tenant,
            actor=Actor.system("tests"),
            url="http://127.0.0.1:9/hooks",
            event_types=["message.delivered"],
        )
    return created.endpoint.pk


def message_id(tenant, issue_key) -> uuid.UUID:
    from delivery.models import Stream
    from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many

    [message] = message_enqueue_many(
        tenant=tenant,
        stream=Stream.TRANSACTIONAL,
        source_type="api",
        source_id="bola",
        purpose="operations",
        recipients=[OutboxRecipient(None, f"bola.{uuid.uuid4().hex[:8]}@example.org")],
        content=RenderedContent(subject="Notice", html="<p>Notice</p>", text="Notice"),
    )
    return message.pk


def authorization_id(tenant, issue_key) -> uuid.UUID:
    import datetime

    from consent import authorization_records as records
    from consent.services import Evidence
    from healthmail.actors import Actor
    from tests.consent.conftest import new_contact, new_text

    today = records.tenant_today(tenant)
    authorization, _ = records.authorization_record(
        tenant=tenant,
        contact=new_contact(tenant),
        text=new_text(tenant),
        signature=records.Signature(signer_name="Pat Example", signed_on=today - datetime.timedelta(days=3)),
        circumstances=records.Circumstances(form_source="paper", expiry_event="Leaving the plan"),
        evidence=Evidence(source="paper", actor=Actor.system("tests")),
        submission_key=uuid.uuid4().hex,
    )
    return authorization.pk
