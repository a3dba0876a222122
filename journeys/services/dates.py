"""The date trigger: a date of the contact relative to its own today (a birthday, the last visit +
11 months, an appointment - 2 days) enters the contact on that local day.

The contact's today is the date in its time zone (the `time_zone` demographic, an IANA name) or else
the organization's (Tenant.timezone), computed with zoneinfo, so a DST change moves nothing: the
local date is read from the clock as people there read it. At one UTC moment contacts are on up to
three different dates, so the trigger runs every hour (a compare-and-set on the hour) and enters the
contacts whose date matches their today; a contact that already entered during its local today is
not entered again that day (whatever the re-entry rule), so a journey finished within the day does
not start over.

Birthdays (anniversaries) match month and day in any year; 29 February is celebrated on 28 February
in years without one (the common civil rule, e.g. UK and New Zealand ages of majority), once a year.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterator

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Journey, JourneyVersion, Position
from . import engine
from .rules import contact_zone

SCAN_BATCH = 2_000


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


def _contacts(tenant: Tenant, column: str) -> Iterator[list[Contact]]:
    query = Contact.objects.filter(tenant=tenant, deleted_at__isnull=True).exclude(
        **{f"{column}__isnull": True}
    )
    last = None
    while True:
        page = query.filter(pk__gt=last) if last else query
        batch = list(page.order_by("pk").only("id", "tenant_id", column, "demographics")[:SCAN_BATCH])
        if not batch:
            return
        yield batch
        last = batch[-1].pk


def _entered_today(tenant: Tenant, journey: Journey, due: dict, now: datetime.datetime) -> set:
    """The contacts of `due` ({contact id: (zone, local today)}) that already entered on that day."""
    recent = Position.objects.filter(
        tenant=tenant,
        journey=journey,
        contact_id__in=list(due),
        entered_at__gte=now - datetime.timedelta(days=2),  # a local day is at most 26 hours long
    ).values_list("contact_id", "entered_at")
    return {
        contact_id
        for contact_id, entered_at in recent
        if entered_at.astimezone(due[contact_id][0]).date() == due[contact_id][1]
    }


@transaction.atomic
def journey_date_enrol(*, tenant: Tenant, journey: Journey, now: datetime.datetime | None = None) -> int:
    """The date trigger for this hour: contacts whose date (+ offset) is their local today enter. At
    most once an hour per journey. The dates and time zones are sealed, so the scan opens them as
    the system, only those two columns."""
    if journey.status != Journey.Status.ACTIVE or journey.live_version_id is None:
        return 0
    now = now or timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    default = zoneinfo.ZoneInfo(tenant.timezone)
    with tenant_context(tenant):
        claimed = (
            Journey.objects.filter(pk=journey.pk, tenant=tenant)
            .filter(Q(date_checked_at__isnull=True) | Q(date_checked_at__lt=hour))
            .update(date_checked_at=hour)
        )
        if not claimed:
            return 0
        entry = JourneyVersion.objects.get(tenant=tenant, pk=journey.live_version_id).definition["entry"]
        field = entry["field"]
        column = "birth_date" if field == "birth_date" else "custom_fields"
        anniversary = bool(entry.get("anniversary", field == "birth_date"))
        offset = entry.get("offset_days", 0)
        entered = 0
        for batch in _contacts(tenant, column):
            due = {}
            for contact in batch:
                value = _date_value(contact, field)
                if value is None:
                    continue
                zone = contact_zone(contact, default)
                today = now.astimezone(zone).date()
                if date_matches(value, today=today, offset_days=offset, anniversary=anniversary):
                    due[contact.pk] = (zone, today)
            if due:
                fresh = [pk for pk in due if pk not in _entered_today(tenant, journey, due, now)]
                entered += len(
                    engine.positions_enter(tenant=tenant, journey=journey, contact_ids=fresh, now=now)
                )
        if entered:
            audit.record(
                actor=Actor.system("journeys"),
                action="journeys.date_enrol",
                target=journey,
                tenant=tenant,
                details={"hour": hour.isoformat(), "entered": entered},
            )
    return entered
