"""Putting contacts into a journey and taking them out: one contact (API, staff), a whole segment
(manual enrolment). The date trigger is in dates.py, the segment-join trigger in segments.py.

Entry is an insert that the unique open-position constraint settles: a contact already inside stays
where it is. Counts are the rows the database inserted or changed.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import Conflict
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from segmentation.models import Segment
from segmentation.services import segment_member_ids

from ..models import Journey, Position, StepLog
from . import engine


def _live(journey: Journey) -> None:
    if journey.status != Journey.Status.ACTIVE or journey.live_version_id is None:
        raise Conflict("Contacts enter only an active journey.", code="journey_not_active")


@transaction.atomic
def journey_enrol(*, tenant: Tenant, actor: Actor, journey: Journey, contact: Contact) -> Position:
    """Enter one contact now; a contact already inside is answered with its current position, one the
    journey's re-entry rule keeps out with Conflict (journey_reentry)."""
    _live(journey)
    with tenant_context(tenant):
        entered = engine.positions_enter(
            tenant=tenant, journey=journey, contact_ids=[contact.pk], now=timezone.now()
        )
        position = Position.objects.filter(
            tenant=tenant, journey=journey, contact=contact, state=Position.State.WAITING
        ).first()
        if position is None:  # not inside, and not let in
            raise Conflict(
                "The journey's re-entry rule keeps this contact out for now.", code="journey_reentry"
            )
        if entered:
            audit.record(
                actor=actor, action="journeys.enrol", target=journey, tenant=tenant, contacts=[contact.pk]
            )
            from .. import tasks

            tasks.advance_soon(tenant=tenant, position_ids=[position.pk], one_contact=True)
    return position


@transaction.atomic
def journey_remove(*, tenant: Tenant, actor: Actor, journey: Journey, contact: Contact) -> int:
    """Take the contact out of the journey now (1 if it was inside, else 0)."""
    now = timezone.now()
    with tenant_context(tenant):
        position = (
            Position.objects.select_for_update()
            .filter(tenant=tenant, journey=journey, contact=contact, state=Position.State.WAITING)
            .first()
        )
        if position is None:
            return 0
        Position.objects.filter(pk=position.pk, tenant=tenant).update(
            state=Position.State.EXITED,
            exited_at=now,
            exit_reason="removed",
            due_at=None,
            waiting_event="",
            updated_at=now,
        )
        StepLog.objects.create(
            tenant=tenant,
            journey=journey,
            version_id=position.version_id,
            position=position,
            contact=contact,
            step=position.step,
            outcome=StepLog.Outcome.EXITED,
            detail="removed",
            at=now,
        )
        audit.record(
            actor=actor, action="journeys.remove", target=journey, tenant=tenant, contacts=[contact.pk]
        )
    return 1


@transaction.atomic
def journey_enrol_segment(*, tenant: Tenant, actor: Actor, journey: Journey, segment: Segment) -> int:
    """Manual enrolment: every member of the segment now enters (members already inside stay)."""
    _live(journey)
    with tenant_context(tenant):
        members = segment_member_ids(tenant=tenant, definition=segment.definition)
        entered = engine.positions_enter(
            tenant=tenant, journey=journey, contact_ids=members, now=timezone.now()
        )
        audit.record(
            actor=actor,
            action="journeys.enrol_segment",
            target=journey,
            tenant=tenant,
            details={"segment": str(segment.pk), "entered": len(entered)},
        )
    return len(entered)
