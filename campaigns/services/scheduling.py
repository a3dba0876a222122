"""When each message of a campaign may go: the start (the organization's local time or each
recipient's), a send-time window, and a throttle that spreads messages over the hours.

The outbox holds the answer (`Message.not_before`), so the plan survives restarts and the delivery
engine needs no knowledge of campaigns.
"""

from __future__ import annotations

import datetime
import math
from zoneinfo import ZoneInfo

# A recipient's time zone, from the state kept on the contact (plaintext, de-identified). States
# spanning two zones get the zone where most people live.
STATE_TIMEZONES: dict[str, str] = {
    **dict.fromkeys(
        (
            "CT",
            "DE",
            "DC",
            "FL",
            "GA",
            "IN",
            "ME",
            "MD",
            "MA",
            "MI",
            "NH",
            "NJ",
            "NY",
            "NC",
            "OH",
            "PA",
            "RI",
            "SC",
            "VT",
            "VA",
            "WV",
            "KY",
        ),
        "America/New_York",
    ),
    **dict.fromkeys(
        ("AL", "AR", "IL", "IA", "KS", "LA", "MN", "MS", "MO", "NE", "ND", "OK", "SD", "TN", "TX", "WI"),
        "America/Chicago",
    ),
    **dict.fromkeys(("CO", "MT", "NM", "UT", "WY", "ID"), "America/Denver"),
    "AZ": "America/Phoenix",
    **dict.fromkeys(("CA", "NV", "OR", "WA"), "America/Los_Angeles"),
    "AK": "America/Anchorage",
    "HI": "Pacific/Honolulu",
    "PR": "America/Puerto_Rico",
    "VI": "America/St_Thomas",
    "GU": "Pacific/Guam",
    "MP": "Pacific/Saipan",
    "AS": "Pacific/Pago_Pago",
}


def zone_for(state: str, fallback: str) -> ZoneInfo:
    return ZoneInfo(STATE_TIMEZONES.get((state or "").upper(), fallback))


def _local(send_date: datetime.date, send_time: datetime.time, zone: ZoneInfo) -> datetime.datetime:
    return datetime.datetime.combine(send_date, send_time, tzinfo=zone)


def schedule_start(
    *,
    tenant_timezone: str,
    send_date: datetime.date | None,
    send_time: datetime.time | None,
    mode: str,
    now: datetime.datetime,
) -> datetime.datetime:
    """When the launch runs: now, the organization's local time, or (recipient time zones) the
    moment the first recipient's local time comes round."""
    if send_date is None or send_time is None:
        return now
    if mode == "recipient":
        zones = {*STATE_TIMEZONES.values(), tenant_timezone}
        start = min(_local(send_date, send_time, ZoneInfo(zone)) for zone in zones)
    else:
        start = _local(send_date, send_time, ZoneInfo(tenant_timezone))
    return max(start, now)


def next_in_window(
    moment: datetime.datetime, zone: ZoneInfo, start: datetime.time | None, end: datetime.time | None
) -> datetime.datetime:
    """`moment`, or the next opening of the daily window [start, end) in `zone` (overnight windows
    such as 20:00-06:00 work too)."""
    if start is None or end is None:
        return moment
    local = moment.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if inside:
        return moment
    opening = _local(local.date(), start, zone)
    if opening <= local:
        opening += datetime.timedelta(days=1)
    return opening


def send_times(
    *,
    states: list[str],
    start: datetime.datetime,
    now: datetime.datetime,
    tenant_timezone: str,
    send_date: datetime.date | None,
    send_time: datetime.time | None,
    recipient_mode: bool,
    window_start: datetime.time | None,
    window_end: datetime.time | None,
    throttle_per_hour: int | None,
) -> list[datetime.datetime | None]:
    """One `not_before` per recipient (None: at once), in the order given."""
    tenant_zone = ZoneInfo(tenant_timezone)
    if not (recipient_mode and send_date) and window_start is None and not throttle_per_hour and start <= now:
        return [None] * len(states)
    interval = datetime.timedelta(hours=1) / throttle_per_hour if throttle_per_hour else datetime.timedelta(0)
    times: list[datetime.datetime | None] = []
    cursor = start
    for state in states:
        zone = zone_for(state, tenant_timezone) if recipient_mode else tenant_zone
        base = cursor
        if recipient_mode and send_date and send_time:
            base = max(base, _local(send_date, send_time, zone))
        moment = next_in_window(base, zone, window_start, window_end)
        times.append(moment if moment > now else None)
        if interval:
            # The throttle counts time inside the window only: the next slot follows this one.
            cursor = max(cursor, moment if not recipient_mode else cursor) + interval
    return times


def minute(moment: datetime.datetime | None) -> datetime.datetime | None:
    """Recipients are written in groups per minute (one bulk insert each)."""
    if moment is None:
        return None
    return moment.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1 if moment.second else 0)


def ab_test_size(total: int, percent: int, variants: int) -> int:
    """How many recipients the A/B test uses: the share, at least one per variant when possible."""
    if percent >= 100:
        return total
    return min(total, max(variants, math.ceil(total * percent / 100)))
