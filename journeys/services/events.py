"""Named events from the tenant's systems: each one starts the journeys it triggers, wakes exactly the
positions of this contact waiting for it, and converts the positions whose goal it is.

The event id is unique per tenant: a retried event finds its row and does nothing more. The woken and
entered positions are made due now and advanced by a worker right after commit (the engine walks, the
request never decrypts anything).
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from consent.models import Topic
from delivery.models import EngagementEvent
from delivery.tracking.events import NamedEvent, NamedEventReceipt
from healthmail.tenants.context import tenant_context

from .. import definition as spec
from ..models import Journey, JourneyEvent, JourneyVersion, Position, StepLog
from . import engine, segments


def _goals_met(event: NamedEvent, now) -> list[Position]:
    open_positions = Position.objects.filter(
        tenant=event.tenant, contact=event.contact, state=Position.State.WAITING
    ).select_related("version")
    met = [
        p
        for p in open_positions.select_for_update(of=("self",))
        if spec.goal_event(p.version.definition) == event.type
    ]
    for position in met:
        Position.objects.filter(pk=position.pk, tenant=event.tenant, state=Position.State.WAITING).update(
            state=Position.State.EXITED,
            exited_at=now,
            exit_reason="goal",
            due_at=None,
            waiting_event="",
            event_arrived=False,
            updated_at=now,
        )
        StepLog.objects.create(
            tenant=event.tenant,
            journey_id=position.journey_id,
            version_id=position.version_id,
            position=position,
            contact=event.contact,
            step=position.step,
            outcome=StepLog.Outcome.CONVERTED,
            detail=event.type,
            at=now,
        )
    return met


def _wake(event: NamedEvent, now) -> list:
    """The positions of this contact waiting for this event, made due now (row locks: a position a
    worker is walking is woken after that walk commits, and only if it still waits for the event)."""
    woken = Position.objects.filter(
        tenant=event.tenant, contact=event.contact, state=Position.State.WAITING, waiting_event=event.type
    )
    ids = list(woken.values_list("pk", flat=True))
    Position.objects.filter(
        pk__in=ids, tenant=event.tenant, state=Position.State.WAITING, waiting_event=event.type
    ).update(event_arrived=True, due_at=now, updated_at=now)
    return ids


def _enter(event: NamedEvent, now) -> list:
    journeys = Journey.objects.filter(
        tenant=event.tenant, status=Journey.Status.ACTIVE, entry_kind="event", entry_event=event.type
    )
    entered = []
    for journey in journeys:
        entered += [
            pid
            for pid, _ in engine.positions_enter(
                tenant=event.tenant, journey=journey, contact_ids=[event.contact.pk], now=now
            )
        ]
    return entered


@transaction.atomic
def journey_event_receive(event: NamedEvent) -> NamedEventReceipt:
    now = timezone.now()
    with tenant_context(event.tenant):
        try:
            with transaction.atomic():
                stored = JourneyEvent.objects.create(
                    tenant=event.tenant,
                    event_id=event.event_id,
                    type=event.type,
                    contact=event.contact,
                    data=event.data or None,
                    received_at=now,
                )
        except IntegrityError:
            return NamedEventReceipt(event.event_id, event.type, duplicate=True)
        converted = _goals_met(event, now)
        woken = _wake(event, now)
        entered = _enter(event, now)
        JourneyEvent.objects.filter(pk=stored.pk, tenant=event.tenant).update(
            entered=len(entered), woken=len(woken), converted=len(converted)
        )
        audit.record(
            actor=event.actor,
            action="journeys.event",
            target=stored,
            tenant=event.tenant,
            details={
                "type": event.type,
                "entered": len(entered),
                "woken": len(woken),
                "converted": len(converted),
            },
        )
        due = [*woken, *entered]
        if due:
            from .. import tasks  # tasks import the services

            tasks.advance_soon(tenant=event.tenant, position_ids=due, one_contact=True)
    return NamedEventReceipt(event.event_id, event.type, duplicate=False)


def consent_changes_receive(changes: list[tuple]) -> None:
    """Consent changes (in their transaction): contacts enter the active journeys started by that
    change of that topic, due now, woken after commit."""

    by_tenant: dict = {}
    for tenant_id, contact_id, topic_id, kind in changes:
        by_tenant.setdefault(tenant_id, []).append((contact_id, topic_id, kind))
    for tenant_id, rows in by_tenant.items():
        with tenant_context(tenant_id):
            journeys = list(
                Journey.objects.filter(
                    tenant_id=tenant_id, status=Journey.Status.ACTIVE, entry_kind="consent"
                )
            )
            if not journeys:
                continue
            keys = dict(
                Topic.objects.filter(tenant_id=tenant_id, pk__in={t for _, t, _ in rows}).values_list(
                    "pk", "key"
                )
            )
            tenant = journeys[0].tenant
            now = timezone.now()
            entered = []
            for journey in journeys:
                contacts = [
                    c for c, topic_id, kind in rows if f"{kind}:{keys.get(topic_id)}" == journey.entry_event
                ]
                if contacts:
                    entered += [
                        pid
                        for pid, _ in engine.positions_enter(
                            tenant=tenant, journey=journey, contact_ids=contacts, now=now
                        )
                    ]
            if entered:
                from .. import tasks

                tasks.advance_soon(tenant=tenant, position_ids=entered)


def form_submission_receive(event: EngagementEvent) -> None:
    """A form submission reported to the events API (`kind: form_submission`, `label`: the form's
    key), in its transaction: the contact enters the active journeys started by that form, due now,
    advanced after commit. A contact inside stays where it is; one that left, by the re-entry rule."""
    if event.kind != EngagementEvent.Kind.FORM_SUBMISSION or not event.label:
        return
    now = timezone.now()
    with tenant_context(event.tenant_id):
        journeys = Journey.objects.filter(
            tenant_id=event.tenant_id,
            status=Journey.Status.ACTIVE,
            entry_kind="form",
            entry_event=event.label,
        ).select_related("tenant")
        due = []
        for journey in journeys:
            due += [
                pid
                for pid, _ in engine.positions_enter(
                    tenant=journey.tenant, journey=journey, contact_ids=[event.contact_id], now=now
                )
            ]
        if due:
            from .. import tasks

            tasks.advance_soon(tenant=event.tenant_id, position_ids=due)


def engagement_receive(message, action: str) -> None:
    """A human open or click of an email ("opened", "clicked"), in its transaction: the contact's
    positions of the journey that sent it waiting for `email.<action>` are woken (so "did not open
    within N days" is an event wait's timeout), and journeys started by that engagement (of any
    campaign or journey email) take the contact in."""
    from .steps import SOURCE_TYPE

    event = f"email.{action}"
    now = timezone.now()
    with tenant_context(message.tenant_id):
        segments.contacts_changed_receive(message.tenant_id, [message.contact_id])  # engagement segments
        due = []
        if message.source_type == SOURCE_TYPE:
            version_id = message.source_id.partition(":")[0]
            journey_id = (
                JourneyVersion.objects.filter(tenant_id=message.tenant_id, pk=version_id)
                .values_list("journey_id", flat=True)
                .first()
            )
            waiting = Position.objects.filter(
                tenant_id=message.tenant_id,
                contact_id=message.contact_id,
                journey_id=journey_id,
                state=Position.State.WAITING,
                waiting_event=event,
            )
            due += list(waiting.values_list("pk", flat=True))
            waiting.filter(pk__in=due).update(event_arrived=True, due_at=now, updated_at=now)
        journeys = Journey.objects.filter(
            tenant_id=message.tenant_id,
            status=Journey.Status.ACTIVE,
            entry_kind="engagement",
            entry_event=event,
        ).select_related("tenant")
        for journey in journeys:
            due += [
                pid
                for pid, _ in engine.positions_enter(
                    tenant=journey.tenant, journey=journey, contact_ids=[message.contact_id], now=now
                )
            ]
        if due:
            from .. import tasks

            tasks.advance_soon(tenant=message.tenant_id, position_ids=due, one_contact=True)
