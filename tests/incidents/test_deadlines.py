"""The deadline arithmetic of 45 CFR 164.404-410, one test per paragraph of the rule table, and
properties over any date and count (hypothesis)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents.deadlines import (
    Audience,
    DeadlineInputError,
    alert_threshold,
    annual_log_due,
    breach_deadlines,
    tightest,
)

D = datetime.date


def _by_audience(deadlines):
    return {(d.audience, d.state): d for d in deadlines}


# --- 164.404(b): individuals, 60 calendar days after discovery ------------------------------------


def test_individuals_are_due_sixty_calendar_days_after_discovery():
    found = _by_audience(breach_deadlines(discovered_on=D(2026, 3, 2), affected=3, residents_by_state={}))
    assert found[(Audience.INDIVIDUALS, "")].due_on == D(2026, 5, 1)
    assert found[(Audience.INDIVIDUALS, "")].rule == "164.404(b)"


@pytest.mark.parametrize(
    ("discovered", "due"),
    [
        (D(2026, 11, 15), D(2027, 1, 14)),  # across a year end
        (D(2026, 12, 31), D(2027, 3, 1)),  # 2027 is not a leap year
        (D(2027, 12, 31), D(2028, 2, 29)),  # 2028 is: February 29 exists
        (D(2028, 1, 1), D(2028, 3, 1)),  # 60 days of a leap-year January and February
        (D(2027, 1, 1), D(2027, 3, 2)),
        (D(2028, 2, 29), D(2028, 4, 29)),  # discovered on a leap day
    ],
)
def test_sixty_days_across_year_ends_and_leap_years(discovered, due):
    found = _by_audience(breach_deadlines(discovered_on=discovered, affected=1, residents_by_state={}))
    assert found[(Audience.INDIVIDUALS, "")].due_on == due


def test_no_affected_individual_means_no_notice_at_all():
    assert breach_deadlines(discovered_on=D(2026, 1, 1), affected=0, residents_by_state={}) == []


# --- 164.408(b)/(c): HHS at once from 500, else the annual log ------------------------------------


@pytest.mark.parametrize(
    ("affected", "audience"),
    [(1, Audience.HHS_ANNUAL_LOG), (499, Audience.HHS_ANNUAL_LOG), (500, Audience.HHS), (501, Audience.HHS)],
)
def test_hhs_immediately_from_500_else_the_annual_log(affected, audience):
    found = _by_audience(
        breach_deadlines(discovered_on=D(2026, 6, 1), affected=affected, residents_by_state={})
    )
    other = Audience.HHS if audience == Audience.HHS_ANNUAL_LOG else Audience.HHS_ANNUAL_LOG
    assert (audience, "") in found
    assert (other, "") not in found
    expected = D(2026, 7, 31) if audience == Audience.HHS else D(2027, 3, 1)
    assert found[(audience, "")].due_on == expected


@pytest.mark.parametrize(
    ("discovered", "due"),
    [
        (D(2026, 1, 1), D(2027, 3, 1)),
        (D(2026, 12, 31), D(2027, 3, 1)),  # the same log, whatever the day of the year
        (D(2027, 7, 4), D(2028, 2, 29)),  # the log of 2027 falls due in a leap year
        (D(2028, 3, 1), D(2029, 3, 1)),
    ],
)
def test_annual_log_is_sixty_days_after_the_calendar_year_of_discovery(discovered, due):
    assert annual_log_due(discovered) == due
    found = _by_audience(breach_deadlines(discovered_on=discovered, affected=10, residents_by_state={}))
    assert found[(Audience.HHS_ANNUAL_LOG, "")].due_on == due


# --- 164.406: media, more than 500 residents of one State ----------------------------------------


@pytest.mark.parametrize(("residents", "media"), [(499, False), (500, False), (501, True)])
def test_media_only_above_500_residents_of_one_state(residents, media):
    found = _by_audience(
        breach_deadlines(
            discovered_on=D(2026, 6, 1), affected=residents, residents_by_state={"CA": residents}
        )
    )
    assert ((Audience.MEDIA, "CA") in found) is media


def test_media_counts_each_state_on_its_own():
    # 1,200 affected, but no State holds more than 500 of them: no media notice anywhere.
    spread = {"NY": 500, "NJ": 400, "CT": 300}
    assert not [
        d
        for d in breach_deadlines(discovered_on=D(2026, 6, 1), affected=1200, residents_by_state=spread)
        if d.audience == Audience.MEDIA
    ]
    several = {"NY": 501, "NJ": 600, "CT": 99, "PR": 700}  # a territory is a jurisdiction too
    media = [
        d
        for d in breach_deadlines(discovered_on=D(2026, 6, 1), affected=1900, residents_by_state=several)
        if d.audience == Audience.MEDIA
    ]
    assert [d.state for d in media] == ["NJ", "NY", "PR"]
    assert {d.due_on for d in media} == {D(2026, 7, 31)}


# --- 164.410(b) and the BAA: business associate to covered entity, the tighter term wins -----------


def test_a_baa_shorter_term_wins_and_is_the_tightest():
    deadlines = breach_deadlines(
        discovered_on=D(2026, 12, 20), affected=3, residents_by_state={}, baa_days=10, business_associate=True
    )
    found = _by_audience(deadlines)
    assert found[(Audience.COVERED_ENTITY, "")].due_on == D(2026, 12, 30)
    assert found[(Audience.COVERED_ENTITY, "")].rule == "BAA"
    assert tightest(deadlines).audience == Audience.COVERED_ENTITY


@pytest.mark.parametrize("baa_days", [None, 60, 90])
def test_a_baa_never_lengthens_the_sixty_days(baa_days):
    found = _by_audience(
        breach_deadlines(
            discovered_on=D(2026, 1, 10),
            affected=3,
            residents_by_state={},
            baa_days=baa_days,
            business_associate=True,
        )
    )
    assert found[(Audience.COVERED_ENTITY, "")].due_on == D(2026, 3, 11)
    assert found[(Audience.COVERED_ENTITY, "")].rule == "164.410(b)"


def test_without_a_business_associate_the_baa_term_does_not_apply():
    deadlines = breach_deadlines(discovered_on=D(2026, 1, 10), affected=3, residents_by_state={}, baa_days=5)
    assert Audience.COVERED_ENTITY not in {d.audience for d in deadlines}


@pytest.mark.parametrize(
    ("affected", "states", "baa"),
    [(-1, {}, None), (3, {"CA": -1}, None), (3, {"CA": 4}, None), (3, {}, 0)],
)
def test_bad_input_is_refused_with_a_clear_error(affected, states, baa):
    with pytest.raises(DeadlineInputError):
        breach_deadlines(
            discovered_on=D(2026, 1, 1), affected=affected, residents_by_state=states, baa_days=baa
        )


# --- alerts at 30/14/7/1 days ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "threshold"),
    [
        (D(2026, 2, 28), None),  # 31 days left
        (D(2026, 3, 1), 30),
        (D(2026, 3, 17), 14),
        (D(2026, 3, 24), 7),
        (D(2026, 3, 30), 1),
        (D(2026, 3, 31), 1),  # due today
        (D(2026, 4, 5), 1),  # overdue: still the last threshold
        (D(2026, 3, 20), 14),  # a job that missed days raises the threshold it is inside
    ],
)
def test_alert_thresholds(today, threshold):
    assert alert_threshold(D(2026, 3, 31), today) == threshold


# --- properties -----------------------------------------------------------------------------------

dates = st.dates(min_value=D(1990, 1, 1), max_value=D(2200, 12, 31))
states = st.dictionaries(st.sampled_from(["CA", "NY", "TX", "FL", "PR", "DC", "GU"]), st.integers(0, 2000))


# Timing checks off: the machine running the suite is shared; the property, not the speed, is tested.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(discovered=dates, extra=st.integers(0, 5000), by_state=states, baa=st.none() | st.integers(1, 120))
def test_properties_hold_for_any_breach(discovered, extra, by_state, baa):
    affected = sum(by_state.values()) + extra
    deadlines = breach_deadlines(
        discovered_on=discovered,
        affected=affected,
        residents_by_state=by_state,
        baa_days=baa,
        business_associate=True,
    )
    limit = discovered + datetime.timedelta(days=60)
    by_audience = {d.audience for d in deadlines}
    # Nothing is ever later than 60 days, except the annual log, which is never before the year ends.
    for deadline in deadlines:
        if deadline.audience == Audience.HHS_ANNUAL_LOG:
            assert deadline.due_on > D(discovered.year, 12, 31)
            assert deadline.due_on.year == discovered.year + 1
        else:
            assert discovered < deadline.due_on <= limit
    # Exactly one HHS route when anyone is affected.
    if affected:
        assert (Audience.HHS in by_audience) != (Audience.HHS_ANNUAL_LOG in by_audience)
        assert (Audience.HHS in by_audience) == (affected >= 500)
    assert {d.state for d in deadlines if d.audience == Audience.MEDIA} == {
        s for s, n in by_state.items() if n > 500
    }
    # The tightest is the earliest, and the list is sorted by date.
    assert tightest(deadlines) == deadlines[0]
    assert [d.due_on for d in deadlines] == sorted(d.due_on for d in deadlines)
