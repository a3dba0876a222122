"""A wait until a date/time window: `{"type": "wait", "window": {"start": "09:00", "end": "12:00",
"days": ["mon", ..., "fri"], "from_date": "2027-01-04"}, "next": ...}`.

The contact rests until the window next opens in its own time zone (the `time_zone` demographic,
else its state's, else the organization's: the zones quiet hours use, `rules.contact_zones`), on one
of the listed weekdays and not before `from_date`. A contact that reaches the wait while its window
is open goes on at the next advance. Wall-clock time: a DST change moves the opening with it.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from healthmail.tenants.models import Tenant

from .. import definition as spec
from ..models import Position
from .rules import contact_zones


def _clock(text: str) -> datetime.time:
    hours, minutes = text.split(":")
    return datetime.time(int(hours), int(minutes))


def window_opens(local_now: datetime.datetime, window: Mapping) -> datetime.datetime:
    """The first moment at or after `local_now` (aware, in the contact's zone) inside the window:
    `local_now` itself when the window is open."""
    start, end = _clock(window["start"]), _clock(window["end"])
    days = {spec.WEEKDAYS.index(day) for day in window.get("days", spec.WEEKDAYS)}
    today = local_now.date()
    first = today
    if window.get("from_date"):
        first = max(today, datetime.date.fromisoformat(window["from_date"]))
    for offset in range(8):  # the days are not empty: one of the next seven days is listed
        day = first + datetime.timedelta(days=offset)
        if day.weekday() not in days:
            continue
        if day == today:
            clock = local_now.time().replace(tzinfo=None)
            if clock >= end:
                continue
            if clock >= start:
                return local_now
        return datetime.datetime.combine(day, start, tzinfo=local_now.tzinfo)
    raise ValueError("A window lists no weekday.")  # definition.py refuses such a window


def window_dues(
    *, tenant: Tenant, step: Mapping, positions: Sequence[Position], now: datetime.datetime
) -> dict[uuid.UUID, datetime.datetime]:
    """{position id: when its window opens (UTC; `now` when open)}: one zone query for the group."""
    if not positions:
        return {}
    zones = contact_zones(tenant=tenant, contact_ids=[p.contact_id for p in positions])
    dues = {}
    for position in positions:
        zone = zones.get(position.contact_id, ZoneInfo(tenant.timezone))
        opens = window_opens(now.astimezone(zone), step["window"]).astimezone(datetime.UTC)
        dues[position.pk] = max(opens, now)
    return dues
