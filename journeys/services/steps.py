"""What each kind of step does to a group of contacts standing on it, a whole claimed batch at a
time: one gate query per send step, one query per branch, one write per update."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from audit.actors import Actor
from consent import services as consent
from consent.gate import may_send_batch
from consent.models import TRANSACTIONAL_PURPOSES
from contacts import tagging
from contacts.models import Contact
from delivery.models import EncryptionPolicy, EngagementEvent, Message, SenderDomain, Stream
from delivery.outbox import OutboxRecipient, message_enqueue_many
from healthmail.errors import NotFound
from healthmail.tenants.models import Tenant

from ..models import JourneyVersion, Position

SOURCE_TYPE = "journey"
ENGINE = Actor.system("journeys")


def source_id(version_id: uuid.UUID, step: str) -> str:
    """The outbox's source id of a journey message: the version and the step (both needed to render)."""
    return f"{version_id}:{step}"


@dataclass(frozen=True)
class SendResult:
    sent: dict[uuid.UUID, Message]  # position id -> queued message
    refused: dict[uuid.UUID, str]  # position id -> the gate's refusal code


def _topic(tenant: Tenant, purpose: str, key: str):
    if purpose in TRANSACTIONAL_PURPOSES or not key:
        return None
    try:
        return consent.topic_by_key(tenant=tenant, key=key)
    except NotFound:
        return None


def send(
    *, tenant: Tenant, version: JourneyVersion, key: str, step: dict, positions: Sequence[Position]
) -> SendResult:
    """The send gate for every contact on the step now (the same gate as campaigns), then one outbox
    row per allowed contact. The delivery worker asks the gate again right before SMTP."""
    purpose = step["purpose"]
    topic = _topic(tenant, purpose, step.get("topic", ""))
    decisions = may_send_batch(
        tenant=tenant,
        contact_ids=[p.contact_id for p in positions],
        purpose=purpose,
        uses_phi=version.uses_phi,
        topic=topic,
    )
    refused = {p.pk: decisions[p.contact_id].code for p in positions if not decisions[p.contact_id]}
    allowed = [p for p in positions if p.pk not in refused]
    if not allowed:
        return SendResult({}, refused)
    contacts = {
        c.pk: c
        for c in Contact.objects.filter(tenant=tenant, pk__in=[p.contact_id for p in allowed]).only(
            "id", "tenant_id", "email"
        )
    }
    sender_domain = SenderDomain.objects.filter(
        tenant=tenant, pk=version.definition.get("sender_domain_id")
    ).first()
    messages = message_enqueue_many(
        tenant=tenant,
        stream=Stream.TRANSACTIONAL if purpose in TRANSACTIONAL_PURPOSES else Stream.MARKETING,
        source_type=SOURCE_TYPE,
        source_id=source_id(version.pk, key),
        purpose=purpose,
        topic=topic.key if topic else "",
        uses_phi=version.uses_phi,
        encryption_policy=EncryptionPolicy.TLS_ELSE_PORTAL,
        sender_domain=sender_domain,
        recipients=[OutboxRecipient(p.contact_id, contacts[p.contact_id].email) for p in allowed],
    )
    return SendResult({p.pk: m for p, m in zip(allowed, messages, strict=True)}, refused)


def branch(
    *, tenant: Tenant, version: JourneyVersion, condition: dict, positions: Sequence[Position]
) -> set[uuid.UUID]:
    """The positions whose contact meets the condition."""
    contact_ids = [p.contact_id for p in positions]
    if "field" in condition:
        matching = set(
            Contact.objects.filter(
                tenant=tenant, pk__in=contact_ids, **{condition["field"]: condition["equals"]}
            ).values_list("pk", flat=True)
        )
    elif "tag" in condition:
        token = tagging.tag_token(tenant, condition["tag"])
        matching = set(
            Contact.objects.filter(
                tenant=tenant, pk__in=contact_ids, tag_tokens__contains=[token]
            ).values_list("pk", flat=True)
        )
    elif "consent" in condition:
        topic = _topic(tenant, "marketing", condition["consent"])
        decisions = may_send_batch(
            tenant=tenant, contact_ids=contact_ids, purpose="marketing", uses_phi=False, topic=topic
        )
        matching = {contact_id for contact_id, decision in decisions.items() if decision}
    else:
        return _engaged(tenant, version, condition["engagement"], positions)
    return {p.pk for p in positions if p.contact_id in matching}


def _engaged(
    tenant: Tenant, version: JourneyVersion, kind: str, positions: Sequence[Position]
) -> set[uuid.UUID]:
    """Opened or clicked an email of this journey version since entering it (bot opens left out)."""
    earliest = min(p.entered_at for p in positions)
    events = EngagementEvent.objects.filter(
        tenant=tenant,
        contact_id__in=[p.contact_id for p in positions],
        kind=kind,
        is_bot=False,
        source_type=SOURCE_TYPE,
        source_id__startswith=f"{version.pk}:",
        occurred_at__gte=earliest,
    ).values_list("contact_id", "occurred_at")
    latest: dict[uuid.UUID, object] = {}
    for contact_id, occurred_at in events:
        latest[contact_id] = max(latest.get(contact_id, occurred_at), occurred_at)
    return {p.pk for p in positions if p.contact_id in latest and latest[p.contact_id] >= p.entered_at}


def update(*, tenant: Tenant, step: dict, positions: Sequence[Position]) -> None:
    contact_ids = [p.contact_id for p in positions]
    if "add_tag" in step:
        tagging.contacts_tag(tenant=tenant, actor=ENGINE, contact_ids=contact_ids, tag=step["add_tag"])
    if "remove_tag" in step:
        tagging.contacts_tag(
            tenant=tenant, actor=ENGINE, contact_ids=contact_ids, tag=step["remove_tag"], remove=True
        )
    if "journey_stage" in step:
        tagging.contacts_journey_stage_set(
            tenant=tenant, actor=ENGINE, contact_ids=contact_ids, stage=step["journey_stage"]
        )
