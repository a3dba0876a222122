"""The calendar of sends: campaigns (scheduled, and launched ones as they went out) and journey sends
(due from the journeys' waiting positions, and sent ones from the outbox), by local day, month or
week, with the frequency-cap warnings a schedule can already tell.

A campaign's frequency cap (Campaign.frequency_cap_count messages per frequency_cap_days days,
enforced at launch by campaigns.services.audience.frequency_capped) skips people who already got
that many campaign or journey messages in the window. The calendar cannot know who is in two
audiences without counting people, so it warns from the schedule alone: "N other sends fall in the
window of this campaign's cap"; the launch's exclusions then say how many were skipped."""

from __future__ import annotations

import calendar as calendar_lib
import datetime
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.urls import reverse

from campaigns.models import Campaign
from delivery.models import Message
from healthmail import labels
from healthmail.disclosure import Disclosed, Viewer, disclose
from healthmail.tenants.models import Tenant
from journeys.models import Journey, JourneyVersion, Position

MONTH, WEEK = "month", "week"
SHOWN_STATUSES = (
    Campaign.Status.SCHEDULED,
    Campaign.Status.SENDING,
    Campaign.Status.PAUSED,
    Campaign.Status.SENT,
)


@dataclass
class Entry:
    kind: str  # "campaign" | "journey"
    name: str
    when: datetime.datetime | None
    status: str  # a label
    url: str = ""
    count: Disclosed | None = None  # journey sends on the day
    warning: str = ""


@dataclass
class Day:
    date: datetime.date
    in_range: bool
    entries: list[Entry] = field(default_factory=list)


@dataclass
class CalendarView:
    view: str
    start: datetime.date
    end: datetime.date  # inclusive
    weeks: list[list[Day]]
    warnings: list[str]
    previous: datetime.date
    next: datetime.date
    title: str


def today(tenant: Tenant) -> datetime.date:
    return datetime.datetime.now(zoneinfo.ZoneInfo(tenant.timezone)).date()


def _range(
    view: str, anchor: datetime.date
) -> tuple[datetime.date, datetime.date, datetime.date, datetime.date]:
    """(first shown day, last shown day, previous anchor, next anchor); weeks start on Monday."""
    if view == WEEK:
        start = anchor - datetime.timedelta(days=anchor.weekday())
        return (
            start,
            start + datetime.timedelta(days=6),
            start - datetime.timedelta(days=7),
            start + datetime.timedelta(days=7),
        )
    first = anchor.replace(day=1)
    last = first.replace(day=calendar_lib.monthrange(first.year, first.month)[1])
    start = first - datetime.timedelta(days=first.weekday())
    end = last + datetime.timedelta(days=6 - last.weekday())
    previous = (first - datetime.timedelta(days=1)).replace(day=1)
    following = last + datetime.timedelta(days=1)
    return start, end, previous, following


def _campaign_moment(campaign: Campaign) -> datetime.datetime | None:
    return campaign.launched_at or campaign.scheduled_for


def _journey_send_steps(versions: list[JourneyVersion]) -> dict:
    """{version id: step keys whose due time is a send}: a send step itself, or a wait before one."""
    sending: dict = {}
    for version in versions:
        steps = (version.definition or {}).get("steps", {})
        keys = set()
        for key, step in steps.items():
            following = steps.get(step.get("next", ""), {})
            if step.get("type") == "send" or (step.get("type") == "wait" and following.get("type") == "send"):
                keys.add(key)
        sending[version.pk] = keys
    return sending


def _journey_sends(tenant: Tenant, zone, start_at, end_at) -> dict[tuple, int]:
    """{(journey id, local day): sends} — sent ones from the outbox, due ones from the positions."""
    counts: dict[tuple, int] = defaultdict(int)
    sent = (
        Message.objects.for_tenant(tenant)
        .filter(source_type="journey", created_at__gte=start_at, created_at__lt=end_at)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("source_id", "day")
        .annotate(n=Count("id"))
    )
    for row in sent:
        counts[(row["source_id"], row["day"])] += row["n"]
    waiting = (
        Position.objects.filter(
            tenant=tenant, state=Position.State.WAITING, due_at__gte=start_at, due_at__lt=end_at
        )
        .annotate(day=TruncDate("due_at", tzinfo=zone))
        .values("journey_id", "version_id", "step", "day")
        .annotate(n=Count("id"))
    )
    due = list(waiting)
    versions = JourneyVersion.objects.filter(tenant=tenant, pk__in={r["version_id"] for r in due})
    sending = _journey_send_steps(list(versions))
    for position in due:
        if position["step"] in sending.get(position["version_id"], set()):
            counts[(str(position["journey_id"]), position["day"])] += position["n"]
    return counts


def _cap_warning(campaign: Campaign, moment: datetime.datetime, others: list[datetime.datetime]) -> str:
    if not campaign.frequency_cap_count:
        return ""
    window_start = moment - datetime.timedelta(days=campaign.frequency_cap_days)
    before = [other for other in others if window_start <= other < moment]
    if len(before) < campaign.frequency_cap_count:
        return ""
    return (
        f"“{campaign.name}” allows {campaign.frequency_cap_count} message(s) per "
        f"{campaign.frequency_cap_days} day(s), and {len(before)} other send(s) go out in the "
        f"{campaign.frequency_cap_days} day(s) before it: people in both audiences will be skipped "
        "(frequency cap)."
    )


def send_calendar(*, tenant: Tenant, viewer: Viewer, view: str, anchor: datetime.date) -> CalendarView:
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    start, end, previous, following = _range(view, anchor)
    start_at = datetime.datetime.combine(start, datetime.time.min, tzinfo=zone)
    end_at = datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone)
    # Sends of the cap windows too: a send just before the first shown day still counts.
    longest = datetime.timedelta(days=365)  # the longest frequency cap a campaign may have
    candidates = Campaign.objects.for_tenant(tenant).filter(
        Q(launched_at__gte=start_at - longest, launched_at__lt=end_at)
        | Q(launched_at__isnull=True, scheduled_for__gte=start_at - longest, scheduled_for__lt=end_at),
        status__in=SHOWN_STATUSES,
    )
    timed = [(c, moment) for c in candidates if (moment := _campaign_moment(c)) is not None]
    campaigns = [c for c, _ in timed]
    moment_of = {c.pk: moment for c, moment in timed}
    caps = [
        c.frequency_cap_days
        for c in campaigns
        if c.frequency_cap_count and c.status == Campaign.Status.SCHEDULED
    ]
    journey_counts = _journey_sends(
        tenant, zone, start_at - datetime.timedelta(days=max(caps, default=0)), end_at
    )
    journey_moments = [
        datetime.datetime.combine(day, datetime.time(12), tzinfo=zone)
        for (_, day), n in journey_counts.items()
        if n
    ]
    days = {start + datetime.timedelta(days=n): None for n in range((end - start).days + 1)}
    by_day: dict[datetime.date, list[Entry]] = defaultdict(list)
    warnings = []
    for campaign in campaigns:
        moment = moment_of[campaign.pk]
        others = [moment_of[c.pk] for c in campaigns if c.pk != campaign.pk] + journey_moments
        warning = (
            _cap_warning(campaign, moment, others) if campaign.status == Campaign.Status.SCHEDULED else ""
        )
        local = moment.astimezone(zone)
        if local.date() in days:
            if warning:
                warnings.append(warning)
            by_day[local.date()].append(
                Entry(
                    "campaign",
                    campaign.name,
                    local,
                    labels.label("campaign_status", campaign.status),
                    reverse("campaigns:campaign_detail", args=[campaign.pk]),
                    warning=warning,
                )
            )
    journeys = {str(j.pk): j for j in Journey.objects.filter(tenant=tenant)}
    uses_phi = dict(
        JourneyVersion.objects.filter(tenant=tenant, uses_phi=True).values_list("journey_id", "uses_phi")
    )
    for (journey_id, day), count in sorted(journey_counts.items(), key=lambda item: item[0][1]):
        journey = journeys.get(journey_id)
        if journey is None or day not in days:
            continue
        figure = disclose(
            count,
            tenant=tenant,
            viewer=viewer,
            query=f"calendar:journey:{journey_id}#{day.isoformat()}",
            sensitive=bool(uses_phi.get(journey.pk)),
        )
        by_day[day].append(
            Entry("journey", journey.name, None, labels.label("journey_status", journey.status), count=figure)
        )
    ordered = [Day(day, view == WEEK or day.month == anchor.month, by_day.get(day, [])) for day in days]
    for day in ordered:
        day.entries.sort(
            key=lambda e: (e.kind != "campaign", e.when or datetime.datetime.max.replace(tzinfo=zone))
        )
    weeks = [ordered[i : i + 7] for i in range(0, len(ordered), 7)]
    title = (
        f"Week of {start.isoformat()}"
        if view == WEEK
        else f"{calendar_lib.month_name[anchor.month]} {anchor.year}"
    )
    return CalendarView(view, start, end, weeks, warnings, previous, following, title)
