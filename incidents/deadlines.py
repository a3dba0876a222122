"""Breach notification deadlines (45 CFR 164.404-410) as pure functions of dates and counts.

The rule table, read from the regulation text:

| rule | audience | applies when | latest date |
|---|---|---|---|
| 164.404(b) | individuals | any breach of unsecured PHI | discovery + 60 calendar days |
| 164.406(a),(b) | media | more than 500 residents of one State/jurisdiction | discovery + 60 days |
| 164.408(b) | HHS | 500 or more individuals | with the individual notice: discovery + 60 |
| 164.408(c) | HHS (annual log) | fewer than 500 individuals | Dec 31 of the discovery year + 60 |
| 164.410(b), BAA | covered entity | a business associate discovered it | discovery + 60, or the BAA's term |

164.412 (law-enforcement delay): when an official states that a notice would impede a criminal
investigation or damage national security, the notices are delayed: (a) a written statement, for the
time it specifies; (b) an oral one, documented with the official's identity, for no longer than 30
days from the statement unless a written statement is submitted meanwhile. Each statement is a period
[start, end); overlapping periods merge (an oral delay followed within its 30 days by a written one
runs to the written one's end). The clocks are tolled: a period that starts before a deadline pushes
it back by the period's length (counted from the discovery at the earliest); a statement made after
a deadline passed does not revive it.

"Without unreasonable delay" is the rule; the dates are the outer limits. Day 0 is the day of
discovery (164.404(a)(2): the first day the breach is known, or by exercising reasonable diligence
would have been known). A contract can shorten a statutory limit, never lengthen it, so the BAA's
term only counts when it is shorter, and the earliest date of all is the one the incident works to.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

STATUTORY_DAYS = 60
ORAL_DELAY_MAX_DAYS = 30  # 164.412(b)
HHS_IMMEDIATE_THRESHOLD = 500  # 164.408(b): "500 or more"
MEDIA_THRESHOLD = 500  # 164.406(a): "more than 500 residents of a State or jurisdiction"
ALERT_DAYS = (30, 14, 7, 1)


class Audience:
    INDIVIDUALS = "individuals"
    MEDIA = "media"
    HHS = "hhs"
    HHS_ANNUAL_LOG = "hhs_annual_log"
    COVERED_ENTITY = "covered_entity"


LABELS = {
    Audience.INDIVIDUALS: "Affected individuals",
    Audience.MEDIA: "Prominent media outlets",
    Audience.HHS: "Secretary of HHS (immediate)",
    Audience.HHS_ANNUAL_LOG: "Secretary of HHS (annual log)",
    Audience.COVERED_ENTITY: "Covered entity (business associate notice)",
}


@dataclass(frozen=True)
class Deadline:
    audience: str
    due_on: datetime.date
    rule: str
    why: str
    state: str = ""  # media notices are per State or jurisdiction
    tolled_days: int = 0  # 164.412: days added by law-enforcement delays

    @property
    def label(self) -> str:
        return LABELS[self.audience] + (f": {self.state}" if self.state else "")


class DeadlineInputError(ValueError):
    """Counts or terms the rules cannot be applied to."""


def _check(affected: int, residents_by_state: Mapping[str, int], baa_days: int | None) -> None:
    if affected < 0:
        raise DeadlineInputError("The number of affected individuals cannot be negative.")
    if any(count < 0 for count in residents_by_state.values()):
        raise DeadlineInputError("A State's number of residents cannot be negative.")
    if sum(residents_by_state.values()) > affected:
        raise DeadlineInputError("More residents by State than affected individuals.")
    if baa_days is not None and baa_days < 1:
        raise DeadlineInputError("A BAA's notice term must be at least one day.")


Period = tuple[datetime.date, datetime.date]  # [start, end): notices held back on these days


def written_delay(stated_on: datetime.date, until: datetime.date) -> Period:
    """164.412(a): for the time period the official's written statement specifies."""
    if until <= stated_on:
        raise DeadlineInputError("A written delay must end after the day of the statement.")
    return (stated_on, until)


def oral_delay(stated_on: datetime.date) -> Period:
    """164.412(b): temporarily, no longer than 30 days from the date of the oral statement."""
    return (stated_on, stated_on + datetime.timedelta(days=ORAL_DELAY_MAX_DAYS))


def merged(periods: Sequence[Period]) -> list[Period]:
    """Overlapping or touching periods as one (an oral delay continued by a written statement)."""
    found: list[Period] = []
    for start, end in sorted(periods):
        if found and start <= found[-1][1]:
            found[-1] = (found[-1][0], max(found[-1][1], end))
        else:
            found.append((start, end))
    return found


def tolled(due_on: datetime.date, discovered_on: datetime.date, periods: Sequence[Period]) -> datetime.date:
    """The deadline once the delays are taken out of the clock."""
    for start, end in merged(periods):
        start = max(start, discovered_on)
        if end <= start:
            continue
        if start > due_on:
            break  # the deadline had passed before this statement: it is not revived
        due_on += end - start
    return due_on


def delayed_on(day: datetime.date, periods: Sequence[Period]) -> Period | None:
    """The delay holding notices back on `day`, if any."""
    return next(((s, e) for s, e in merged(periods) if s <= day < e), None)


def annual_log_due(discovered_on: datetime.date) -> datetime.date:
    """164.408(c): 60 days after the end of the calendar year in which the breach was discovered."""
    return datetime.date(discovered_on.year, 12, 31) + datetime.timedelta(days=STATUTORY_DAYS)


def breach_deadlines(
    *,
    discovered_on: datetime.date,
    affected: int,
    residents_by_state: Mapping[str, int],
    baa_days: int | None = None,
    business_associate: bool = False,
    delays: Sequence[Period] = (),
) -> list[Deadline]:
    """Every notice a breach requires and its latest date (tolled by law-enforcement delays),
    earliest first."""
    _check(affected, residents_by_state, baa_days)
    statutory = discovered_on + datetime.timedelta(days=STATUTORY_DAYS)
    found: list[Deadline] = []
    if affected:
        found.append(
            Deadline(Audience.INDIVIDUALS, statutory, "164.404(b)", "60 calendar days after discovery")
        )
    for state, residents in sorted(residents_by_state.items()):
        if residents > MEDIA_THRESHOLD:
            found.append(
                Deadline(
                    Audience.MEDIA,
                    statutory,
                    "164.406(b)",
                    f"more than {MEDIA_THRESHOLD} residents of {state}",
                    state=state,
                )
            )
    if affected >= HHS_IMMEDIATE_THRESHOLD:
        found.append(
            Deadline(Audience.HHS, statutory, "164.408(b)", f"{HHS_IMMEDIATE_THRESHOLD} or more individuals")
        )
    elif affected:
        found.append(
            Deadline(
                Audience.HHS_ANNUAL_LOG,
                annual_log_due(discovered_on),
                "164.408(c)",
                f"fewer than {HHS_IMMEDIATE_THRESHOLD} individuals: 60 days after the calendar year ends",
            )
        )
    if business_associate:
        days = min(STATUTORY_DAYS, baa_days or STATUTORY_DAYS)
        shorter = baa_days is not None and baa_days < STATUTORY_DAYS
        found.append(
            Deadline(
                Audience.COVERED_ENTITY,
                discovered_on + datetime.timedelta(days=days),
                "BAA" if shorter else "164.410(b)",
                f"the BAA's {days}-day term (shorter than the rule's 60)"
                if shorter
                else "60 calendar days after discovery",
            )
        )
    if delays:
        found = [_tolled(d, discovered_on, delays) for d in found]
    return sorted(found, key=lambda d: (d.due_on, d.audience, d.state))


def _tolled(deadline: Deadline, discovered_on: datetime.date, delays: Sequence[Period]) -> Deadline:
    due = tolled(deadline.due_on, discovered_on, delays)
    days = (due - deadline.due_on).days
    if not days:
        return deadline
    why = f"{deadline.why}; delayed {days} days at law enforcement's request (164.412)"
    return replace(deadline, due_on=due, why=why, tolled_days=days)


def tightest(deadlines: list[Deadline]) -> Deadline | None:
    """The deadline the incident works to: the earliest."""
    return min(deadlines, key=lambda d: (d.due_on, d.audience, d.state), default=None)


def days_left(due_on: datetime.date, today: datetime.date) -> int:
    return (due_on - today).days


def alert_threshold(due_on: datetime.date, today: datetime.date) -> int | None:
    """The smallest alert threshold (30/14/7/1 days before) reached by `today`, None before the first.
    A daily job that missed days still raises the threshold it is now inside."""
    left = days_left(due_on, today)
    reached = [days for days in ALERT_DAYS if left <= days]
    return min(reached) if reached else None
