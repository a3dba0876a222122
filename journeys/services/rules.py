"""Journey-wide rules applied at send steps: quiet hours (in the contact's time zone) and the frequency
cap shared with campaigns (campaign and journey email in the window count together).

Both are whole-batch questions: one query of the contacts' time zones (their own, sealed, else
their state's), one counting query for the cap.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from django.db.models import Count

from campaigns.services.audience import NOT_SENT
from campaigns.services.scheduling import zone_for
from consent.models import TRANSACTIONAL_PURPOSES
from contacts.models import Contact
from contacts.normalize import time_zone_name
from delivery.models import Message
from healthmail.tenants.models import Tenant

from ..models import Position

CAPPED_SOURCES = ("campaign", "journey")


def _clock(text: str) -> datetime.time:
    hours, minutes = text.split(":")
    return datetime.time(int(hours), int(minutes))


def quiet_end(local: datetime.datetime, start: datetime.time, end: datetime.time) -> datetime.datetime | None:
    """When the quiet window that `local` (an aware local time) falls in ends, or None when `local` is
    outside it. A window may run over midnight (21:00 to 08:00)."""
    now = local.time()
    inside = (start <= now < end) if start < end else (now >= start or now < end)
    if not inside:
        return None
    day = local.date() if now < end else local.date() + datetime.timedelta(days=1)
    # Built as wall-clock time in the zone: a DST change inside the window moves the end with it.
    return datetime.datetime.combine(day, end, tzinfo=local.tzinfo)


def contact_zone(contact: Contact, default: ZoneInfo) -> ZoneInfo:
    """The contact's own time zone (the `time_zone` demographic), else `default` (a stored name no
    longer known counts as none). Date triggers and quiet hours both ask it."""
    name = time_zone_name(str((contact.demographics or {}).get("time_zone") or ""))
    return ZoneInfo(name) if name else default


def contact_zones(*, tenant: Tenant, contact_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ZoneInfo]:
    """Each contact's time zone: its own (the sealed `time_zone` demographic), else its state's
    (plaintext), else the organization's. Called only for the contacts a quiet-hours check holds
    up, so only theirs are decrypted: one query, one decryption per contact that has demographics."""
    rows = Contact.objects.filter(tenant=tenant, pk__in=list(contact_ids)).only(
        "id", "tenant_id", "state", "demographics"
    )
    zones = {}
    for contact in rows:
        default = zone_for(contact.state, tenant.timezone)
        zones[contact.pk] = contact_zone(contact, default) if contact.demographics else default
    return zones


def quiet_until(
    *, tenant: Tenant, definition: dict, positions: Sequence[Position], now: datetime.datetime
) -> dict[uuid.UUID, datetime.datetime]:
    """{position id: when its quiet hours end} for the positions whose contact is in quiet hours now."""
    quiet = definition.get("quiet_hours")
    if not quiet or not positions:
        return {}
    start, end = _clock(quiet["start"]), _clock(quiet["end"])
    zones = contact_zones(tenant=tenant, contact_ids=[p.contact_id for p in positions])
    held = {}
    for position in positions:
        zone = zones.get(position.contact_id, ZoneInfo(tenant.timezone))
        until = quiet_end(now.astimezone(zone), start, end)
        if until is not None:
            held[position.pk] = until.astimezone(datetime.UTC)
    return held


def frequency_capped(
    *,
    tenant: Tenant,
    definition: dict,
    step: dict,
    positions: Sequence[Position],
    now: datetime.datetime,
) -> set[uuid.UUID]:
    """Contacts that already got the cap's count of campaign or journey email in its window (the same
    count campaigns make: messages that never reached the person do not count). Transactional email
    (treatment, payment, operations) is never capped."""
    cap = definition.get("frequency_cap")
    if not cap or not positions or step["purpose"] in TRANSACTIONAL_PURPOSES:
        return set()
    since = now - datetime.timedelta(days=int(cap["days"]))
    return set(
        Message.objects.filter(
            tenant=tenant,
            contact_id__in=[p.contact_id for p in positions],
            created_at__gte=since,
            source_type__in=CAPPED_SOURCES,
        )
        .exclude(state__in=NOT_SENT)
        .values("contact_id")
        .annotate(sent=Count("id"))
        .filter(sent__gte=int(cap["count"]))
        .values_list("contact_id", flat=True)
    )
