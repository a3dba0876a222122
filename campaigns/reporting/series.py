"""The daily engagement series a campaign report and the marketer's desk both draw: messages
delivered, first opened and first clicked per local day. The counts are raw; each caller passes them
through the disclosure policy (healthmail/disclosure.py) cell by cell before they are shown."""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass

from django.db.models import Count, Min, QuerySet
from django.db.models.functions import TruncDate

from delivery.models import EngagementEvent, Message
from healthmail.disclosure import Disclosed

from ..selectors import PROGRESS_GROUPS

SERIES = (("delivered", "Delivered"), ("opened", "Opened (first open)"), ("clicked", "Clicked (first click)"))


@dataclass
class Series:
    days: list[datetime.date]
    cells: dict[str, list[Disclosed]]  # metric -> one cell per day

    def chart(self) -> dict:
        """What the chart script draws: masked cells are null (a gap), never a guess."""
        return {
            "labels": [day.isoformat() for day in self.days],
            "datasets": [
                {"key": key, "label": label, "data": [c.value for c in self.cells[key]]}
                for key, label in SERIES
            ],
        }

    def rows(self) -> list[tuple[datetime.date, list[str]]]:
        return [(day, [self.cells[key][i].display for key, _ in SERIES]) for i, day in enumerate(self.days)]


def _first_event_days(
    events: QuerySet[EngagementEvent], kind: str, zone: zoneinfo.ZoneInfo
) -> dict[datetime.date, int]:
    """Messages by the local day of their first human event of `kind` (a unique open or click)."""
    firsts = (
        events.filter(kind=kind, is_bot=False)
        .exclude(message__isnull=True)
        .values("message")
        .annotate(first=Min("occurred_at"))
        .values_list("first", flat=True)
    )
    days: dict[datetime.date, int] = {}
    for moment in firsts:
        day = moment.astimezone(zone).date()
        days[day] = days.get(day, 0) + 1
    return days


def daily_counts(
    *, messages: QuerySet[Message], events: QuerySet[EngagementEvent], zone: zoneinfo.ZoneInfo
) -> dict[str, dict[datetime.date, int]]:
    """For each metric of SERIES, its count per local day in `zone`: `messages` (already narrowed to
    the finished ones the caller counts) delivered, and the messages of `events` opened and clicked."""
    delivered = dict(
        messages.filter(state__in=PROGRESS_GROUPS["delivered"])
        .annotate(day=TruncDate("finished_at", tzinfo=zone))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return {
        "delivered": delivered,
        "opened": _first_event_days(events, EngagementEvent.Kind.OPEN, zone),
        "clicked": _first_event_days(events, EngagementEvent.Kind.CLICK, zone),
    }
