"""Putting contacts into a journey and taking them out: one contact (API, staff), a whole segment
(manual enrolment), and the date trigger (a date field of the contact, relative to today).

Entry is an insert that the unique open-position constraint settles: a contact already inside stays
where it is. Counts are the rows the database inserted or changed.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterator

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

from ..models import Journey, JourneyVersion, Position, StepLog
from . import engine

DATE_SCAN_BATCH = 2_000


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

            tasks.advance_soon(tenant=tenant, position_ids=[position.pk])
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


def _date_value(contact: Contact, field: str) -> datetime.date | None:
    raw = (
        contact.birth_date
        if field == "birth_date"
        else (contact.custom_fields or {}).get(field.removeprefix("custom."))
    )
    try:
        return datetime.date.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None


def date_matches(value: datetime.date, *, today: datetime.date, offset_days: int, anniversary: bool) -> bool:
    """Does `value + offset` fall on today? Anniversaries (birthdays) match month and day of any year;
    29 February is celebrated on 28 February in other years."""
    target = today - datetime.timedelta(days=offset_days)
    if not anniversary:
        return value == target
    if (value.month, value.day) == (2, 29) and not _leap(target.year):
        return (target.month, target.day) == (2, 28)
    return (value.month, value.day) == (target.month, target.day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _contacts(tenant: Tenant, column: str) -> Iterator[list[Contact]]:
    query = Contact.objects.filter(tenant=tenant, deleted_at__isnull=True).exclude(
        **{f"{column}__isnull": True}
    )
    last = None
    while True:
        page = query.filter(pk__gt=last) if last else query
        batch = list(page.order_by("pk").only("id", "tenant_id", column)[:DATE_SCAN_BATCH])
        if not batch:
            return
        yield batch
        last = batch[-1].pk


@transaction.atomic
def journey_date_enrol(*, tenant: Tenant, journey: Journey, today: datetime.date | None = None) -> int:
    """The date trigger for one day: contacts whose date (+ offset) is today (the tenant's today) enter.
    At most once a day per journey (a compare-and-set on the day). The dates are sealed, so the scan
    opens them as the system, only that one column."""
    _live(journey)
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    today = today or timezone.localdate(timezone.now(), timezone=zone)
    with tenant_context(tenant):
        entry = JourneyVersion.objects.get(tenant=tenant, pk=journey.live_version_id).definition["entry"]
        claimed = (
            Journey.objects.filter(pk=journey.pk, tenant=tenant)
            .exclude(date_entered_on=today)
            .update(date_entered_on=today)
        )
        if not claimed:
            return 0
        field = entry["field"]
        column = "birth_date" if field == "birth_date" else "custom_fields"
        anniversary = bool(entry.get("anniversary", field == "birth_date"))
        entered = 0
        now = timezone.now()
        for batch in _contacts(tenant, column):
            matching = [
                c.pk
                for c in batch
                if (value := _date_value(c, field)) is not None
                and date_matches(
                    value, today=today, offset_days=entry.get("offset_days", 0), anniversary=anniversary
                )
            ]
            if matching:
                entered += len(
                    engine.positions_enter(tenant=tenant, journey=journey, contact_ids=matching, now=now)
                )
        audit.record(
            actor=Actor.system("journeys"),
            action="journeys.date_enrol",
            target=journey,
            tenant=tenant,
            details={"day": today.isoformat(), "entered": entered},
        )
    return entered
