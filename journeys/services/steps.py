"""What each kind of step does to a group of contacts standing on it, a whole claimed batch at a
time: one gate query per send step, one query per branch, one write per update."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils import timezone

from consent import services as consent
from consent.gate import may_send_batch
from consent.models import TRANSACTIONAL_PURPOSES
from contacts import tagging
from contacts.models import Contact
from delivery.models import EncryptionPolicy, EngagementEvent, Message, SenderDomain, Stream, WebhookEndpoint
from delivery.outbox import OutboxRecipient, message_enqueue_many
from delivery.webhooks.services import webhook_deliveries_queue
from healthmail.accounts.models import Membership
from healthmail.actors import Actor
from healthmail.errors import NotFound
from healthmail.sysmail.services import system_mail_queue
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
        tokens = tagging.tag_tokens(tenant, condition["tag"])
        matching = set(
            Contact.objects.filter(tenant=tenant, pk__in=contact_ids, tag_tokens__overlap=tokens).values_list(
                "pk", flat=True
            )
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
    latest: dict[uuid.UUID, datetime.datetime] = {}
    for contact_id, occurred_at in events:
        latest[contact_id] = max(latest.get(contact_id, occurred_at), occurred_at)
    return {p.pk for p in positions if p.contact_id in latest and latest[p.contact_id] >= p.entered_at}


def update(*, tenant: Tenant, step: dict, positions: Sequence[Position]) -> None:
    contact_ids = [p.contact_id for p in positions]
    change = step.get("set_field")
    if change and change["field"] == "journey_stage":
        tagging.contacts_journey_stage_set(
            tenant=tenant, actor=ENGINE, contact_ids=contact_ids, stage=change["value"]
        )
    elif change:
        tagging.contacts_field_set(
            tenant=tenant, actor=ENGINE, contact_ids=contact_ids, field=change["field"], value=change["value"]
        )
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


def tagged(*, tenant: Tenant, tag: str, contact_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The contacts that have `tag`."""
    tokens = tagging.tag_tokens(tenant, tag)  # either of two while an index-key rotation runs
    return set(
        Contact.objects.filter(
            tenant=tenant, pk__in=list(contact_ids), tag_tokens__overlap=tokens
        ).values_list("pk", flat=True)
    )


LIST_PREFIX = "list."
JOURNEY_EVENT = "journey.step"
NOTIFY_TOPIC = "journeys.notify"
NOTIFY_LINKS = 50


def list_tag(name: str) -> str:
    """A static list is the set of contacts holding the tag `list.<name>`: segments select it like
    any tag, and adding or removing a member is one set-based write."""
    return f"{LIST_PREFIX}{name}"


def act(
    *, tenant: Tenant, version: JourneyVersion, key: str, step: dict, positions: Sequence[Position]
) -> str:
    """Update, list, webhook and notify steps for every contact on the step; returns the log detail."""
    kind = step["type"]
    if kind == "update":
        update(tenant=tenant, step=step, positions=positions)
        return ""
    contact_ids = [p.contact_id for p in positions]
    if kind == "list":
        tagging.contacts_tag(
            tenant=tenant,
            actor=ENGINE,
            contact_ids=contact_ids,
            tag=list_tag(step["list"]),
            remove=step["action"] == "remove",
        )
        return f"list_{step['action']}"
    if kind == "webhook":
        return webhook(tenant=tenant, version=version, key=key, step=step, positions=positions)
    return notify(tenant=tenant, version=version, key=key, step=step, positions=positions)


def webhook(
    *, tenant: Tenant, version: JourneyVersion, key: str, step: dict, positions: Sequence[Position]
) -> str:
    """One signed delivery per contact to the tenant's endpoint, written in this transaction and sent
    by the webhook worker (the SSRF-guarded sender, its retries and its sweep). Ids only, never PHI."""

    endpoint_id = _uuid(step["endpoint_id"])
    endpoint = (
        WebhookEndpoint.objects.filter(tenant=tenant, pk=endpoint_id, active=True)
        .only("id", "event_types")
        .first()
        if endpoint_id is not None
        else None
    )
    if endpoint is None:
        return "webhook_unavailable"  # deleted or paused since approval: the journey goes on
    now = timezone.now().isoformat()
    payloads = [
        {
            "event": JOURNEY_EVENT,
            "event_id": str(uuid.uuid4()),
            "journey_id": str(version.journey_id),
            "version": version.number,
            "step": key,
            "position_id": str(p.pk),
            "contact_id": str(p.contact_id),
            "occurred_at": now,
        }
        for p in positions
    ]
    webhook_deliveries_queue(tenant_id=tenant.pk, endpoint=endpoint, event=JOURNEY_EVENT, payloads=payloads)
    return "webhook_queued"


def notify(
    *, tenant: Tenant, version: JourneyVersion, key: str, step: dict, positions: Sequence[Position]
) -> str:
    """One system mail to each active staff member of the role, per batch of contacts on the step:
    the journey, the step and links to the contacts' pages (ids only: the page shows the rest to
    whoever may see it, audited)."""
    from django.conf import settings
    from django.urls import reverse

    from ..models import Journey

    users = [
        m.user
        for m in Membership.objects.filter(tenant=tenant, role=step["role"], is_active=True).select_related(
            "user"
        )
        if m.user.is_active and m.user.email
    ]
    if not users:
        return "notify_nobody"
    name = Journey.objects.filter(tenant=tenant, pk=version.journey_id).values_list("name", flat=True).first()
    base = getattr(settings, "PUBLIC_BASE_URL", "").rstrip("/")
    links = [
        base + reverse("contacts:contact_detail", kwargs={"contact_id": p.contact_id})
        for p in positions[:NOTIFY_LINKS]
    ]
    more = "\n(and more: see the journey's step report)" if len(positions) > NOTIFY_LINKS else ""
    body = f'Contacts reached the step "{key}" of the journey "{name}".\n\n' + "\n".join(links) + more + "\n"
    system_mail_queue(
        tenant=tenant,
        topic=NOTIFY_TOPIC,
        subject=step["subject"],
        body=body,
        users=users,
        source_ids=[version.journey_id],
    )
    return "notified"


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
