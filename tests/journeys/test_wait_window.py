"""A wait until a date/time window: the contact rests until the window next opens in its own time
zone (else its state's, else the organization's), on a listed weekday and not before the first day;
one already inside the window goes on at the next advance."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest

from healthmail.tenants.context import tenant_context
from journeys import definition as spec
from journeys.models import Position
from journeys.services import dryrun, engine, enrolment
from journeys.services.waits import window_opens

from .conftest import SYSTEM
from .steps_support import EXIT, journey_of, tags
from .test_quiet_hours import person

UTC = datetime.UTC
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
# 16:00 UTC on Wednesday 10 March 2027.
NOW = datetime.datetime(2027, 3, 10, 16, 0, tzinfo=UTC)


def _at(*args, zone=NEW_YORK):
    return datetime.datetime(*args, tzinfo=zone)


@pytest.mark.parametrize(
    ("local_now", "window", "opens"),
    [
        # Before the window: today at its start. Inside: now. After it: the next listed day.
        (_at(2027, 3, 10, 7, 30), {"start": "09:00", "end": "12:00"}, _at(2027, 3, 10, 9, 0)),
        (_at(2027, 3, 10, 10, 15), {"start": "09:00", "end": "12:00"}, _at(2027, 3, 10, 10, 15)),
        (_at(2027, 3, 10, 12, 0), {"start": "09:00", "end": "12:00"}, _at(2027, 3, 11, 9, 0)),
        # Friday afternoon, weekdays only: Monday morning.
        (
            _at(2027, 3, 12, 15, 0),
            {"start": "09:00", "end": "12:00", "days": WEEKDAYS},
            _at(2027, 3, 15, 9, 0),
        ),
        # Not before a first day (a Thursday); Tuesdays only: the Tuesday after it.
        (
            _at(2027, 3, 10, 10, 0),
            {"start": "09:00", "end": "12:00", "days": ["tue"], "from_date": "2027-04-01"},
            _at(2027, 4, 6, 9, 0),
        ),
        # A first day in the past changes nothing.
        (
            _at(2027, 3, 10, 10, 0),
            {"start": "09:00", "end": "12:00", "from_date": "2027-01-01"},
            _at(2027, 3, 10, 10, 0),
        ),
    ],
)
def test_the_window_opens_at_the_first_moment_inside_it(local_now, window, opens):
    assert window_opens(local_now, window) == opens


def test_a_dst_change_moves_the_opening_with_the_wall_clock():
    # Saturday 13 March 2027 (EST, UTC-5); the window opens Sunday 09:00, after the change to EDT.
    opens = window_opens(_at(2027, 3, 13, 10, 0), {"start": "09:00", "end": "12:00", "days": ["sun"]})

    assert opens.astimezone(UTC) == datetime.datetime(2027, 3, 14, 13, 0, tzinfo=UTC)  # 09:00 EDT


@pytest.mark.parametrize(
    ("window", "where"),
    [
        ({"start": "12:00", "end": "09:00"}, "steps.a.window.start"),
        ({"start": "9am", "end": "12:00"}, "steps.a.window.start"),
        ({"start": "09:00", "end": "12:00", "days": ["someday"]}, "steps.a.window.days"),
        ({"start": "09:00", "end": "12:00", "days": []}, "steps.a.window.days"),
        ({"start": "09:00", "end": "12:00", "from_date": "soon"}, "steps.a.window.from_date"),
        ({"start": "09:00", "end": "12:00", "hour": 3}, "steps.a.window"),
        ("mornings", "steps.a.window"),
    ],
)
def test_a_bad_window_is_refused_where_it_is(window, where):
    body = {
        "entry": {"kind": "manual"},
        "start": "a",
        "steps": {"a": {"type": "wait", "window": window, "next": "done"}, **EXIT},
    }

    assert where in {p.where for p in spec.problems_of(body)}


def test_a_wait_has_a_duration_or_a_window_not_both():
    body = {
        "entry": {"kind": "manual"},
        "start": "a",
        "steps": {
            "a": {
                "type": "wait",
                "seconds": 3600,
                "window": {"start": "09:00", "end": "12:00"},
                "next": "done",
            },
            **EXIT,
        },
    }

    assert [p.where for p in spec.problems_of(body)] == ["steps.a.window"]


def test_a_window_wait_breaks_a_loop_like_any_wait():
    steps = {
        "a": {"type": "update", "add_tag": "x", "next": "w"},
        "w": {"type": "wait", "window": {"start": "09:00", "end": "12:00"}, "next": "a"},
    }

    assert spec.instant_cycle(steps) is None


@pytest.fixture(autouse=True)
def no_wakeups(monkeypatch):
    from journeys import tasks

    monkeypatch.setattr(tasks, "advance_soon", lambda **kwargs: None)


@pytest.mark.django_db
def test_contacts_rest_until_the_window_opens_in_their_own_time_zone(tenant_a, people):
    tenant_a.timezone = "Asia/Tokyo"
    tenant_a.save(update_fields=["timezone"])
    steps = {
        "hold": {
            "type": "wait",
            "window": {"start": "09:00", "end": "12:00", "days": WEEKDAYS},
            "next": "mark",
        },
        "mark": {"type": "update", "add_tag": "reached", "next": "done"},
        **EXIT,
    }
    journey = journey_of(tenant_a, people, steps, "hold", name="Office hours")
    contacts = {
        # Its own zone, Auckland (05:00 Thursday), though its address says New York: 09:00 NZDT.
        "auckland": person(tenant_a, "w-auckland", state="NY", zone="Pacific/Auckland"),
        # Its own zone, New York (11:00 Wednesday): inside the window, goes on.
        "new_york": person(tenant_a, "w-new-york", state="HI", zone="America/New_York"),
        # Its state's zone, Hawaii (06:00 Wednesday): 09:00 HST.
        "hawaii": person(tenant_a, "w-hawaii", state="HI"),
        # The organization's, Tokyo (01:00 Thursday): 09:00 JST.
        "tokyo": person(tenant_a, "w-tokyo"),
    }
    for contact in contacts.values():
        enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)

    while engine.positions_advance(tenant=tenant_a, now=NOW).advanced:
        pass

    with tenant_context(tenant_a):
        positions = {p.contact_id: p for p in Position.objects.filter(journey=journey)}
    waiting = {
        contact_id: p.due_at for contact_id, p in positions.items() if p.state == Position.State.WAITING
    }
    assert waiting == {
        contacts["auckland"].pk: datetime.datetime(2027, 3, 10, 20, 0, tzinfo=UTC),
        contacts["hawaii"].pk: datetime.datetime(2027, 3, 10, 19, 0, tzinfo=UTC),
        contacts["tokyo"].pk: datetime.datetime(2027, 3, 11, 0, 0, tzinfo=UTC),
    }
    assert positions[contacts["new_york"].pk].exit_reason == "completed"
    assert tags(tenant_a, contacts["new_york"])
    assert not tags(tenant_a, contacts["tokyo"])

    while engine.positions_advance(
        tenant=tenant_a, now=datetime.datetime(2027, 3, 11, 0, 0, tzinfo=UTC)
    ).advanced:
        pass

    with tenant_context(tenant_a):
        left = set(Position.objects.filter(journey=journey).values_list("exit_reason", flat=True))
    assert left == {"completed"}


def test_the_dry_run_names_the_window_and_models_every_step_kind():
    body = {
        "entry": {"kind": "manual"},
        "start": "hold",
        "steps": {
            "hold": {
                "type": "wait",
                "window": {"start": "09:00", "end": "12:00", "days": ["mon"]},
                "next": "ab",
            },
            "ab": {
                "type": "split",
                "metric": "click",
                "variants": [{"weight": 50, "next": "listed"}, {"weight": 50, "next": "hook"}],
            },
            "listed": {"type": "list", "list": "recall", "action": "add", "next": "check"},
            "hook": {"type": "webhook", "endpoint_id": "e", "next": "tell"},
            "tell": {"type": "notify", "role": "marketer", "subject": "Recall", "next": "check"},
            "check": {"type": "branch", "condition": {"tag": "list.recall"}, "yes": "done", "no": "away"},
            "away": {"type": "jump", "journey_id": "00000000-0000-0000-0000-000000000001"},
            **EXIT,
        },
    }

    paths = [[note for _, note in sample.path] for sample in dryrun.dry_run(body)]
    outcomes = {sample.outcome for sample in dryrun.dry_run(body)}

    assert all(path[0] == "waits until mon 09:00-12:00 (contact's time)" for path in paths)
    assert {path[1] for path in paths} == {"path 1 of the split", "path 2 of the split"}
    assert outcomes == {"completes the journey", "leaves for another journey"}
    assert any("added to the list recall" in path for path in paths)
    assert any("staff notified (marketer)" in path for path in paths)
