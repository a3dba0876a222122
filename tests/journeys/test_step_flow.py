"""Steps that move contacts: a jump to another journey (and loops of jumps refused), the A/B split
with its winner, re-entry rules; and the per-step counts and split report, disclosed."""

from __future__ import annotations

import copy
import datetime

import pytest
from django.utils import timezone

from contacts.tagging import contacts_tag
from healthmail import disclosure
from healthmail.errors import Conflict
from healthmail.tenants.context import tenant_context
from journeys import definition as spec
from journeys import selectors
from journeys.models import Position, StepLog
from journeys.services import engine, enrolment

from .conftest import SYSTEM, patient
from .steps_support import EXIT, enrol_and_run, journey_of, position_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_wakeups")]


def test_a_jump_to_another_journey_exits_here_and_enters_there(tenant_a, people):
    target = journey_of(
        tenant_a,
        people,
        {"wait": {"type": "wait", "seconds": 3600, "next": "done"}, **EXIT},
        "wait",
        name="B",
    )
    journey = journey_of(
        tenant_a, people, {"go": {"type": "jump", "journey_id": str(target.pk)}}, "go", name="A"
    )
    contact = patient(tenant_a, opt_in=False)

    enrol_and_run(tenant_a, journey, [contact])

    assert position_of(tenant_a, journey, contact).exit_reason == "jumped"
    there = position_of(tenant_a, target, contact)
    assert (there.state, there.step) == ("waiting", "wait")


def test_journeys_jumping_into_each_other_without_a_wait_are_refused(tenant_a, people):
    first = journey_of(
        tenant_a, people, {"x": {"type": "update", "add_tag": "a", "next": "done"}, **EXIT}, "x"
    )
    second = journey_of(
        tenant_a, people, {"go": {"type": "jump", "journey_id": str(first.pk)}}, "go", name="Second"
    )
    from journeys.services import journeys as journey_services

    looping = {
        "entry": {"kind": "manual"},
        "start": "go",
        "steps": {"go": {"type": "jump", "journey_id": str(second.pk)}},
    }
    with pytest.raises(spec.DefinitionInvalid, match="jump into each other"):
        journey_services.journey_edit(
            tenant=tenant_a, actor=people["marketer"].actor, role=people["marketer"].role,
            journey=first, definition=looping,
        )  # fmt: skip
    waiting = copy.deepcopy(looping)
    waiting["start"] = "pause"
    waiting["steps"]["pause"] = {"type": "wait", "seconds": 3600, "next": "go"}
    journey_services.journey_edit(
        tenant=tenant_a, actor=people["marketer"].actor, role=people["marketer"].role,
        journey=first, definition=waiting,
    )  # fmt: skip


def test_a_split_sends_contacts_down_both_paths_and_names_the_winner(tenant_a, people):
    steps = {
        "ab": {"type": "split", "metric": "goal",
               "variants": [{"weight": 50, "next": "a"}, {"weight": 50, "next": "b"}]},
        "a": {"type": "wait", "seconds": 3600, "next": "done"},
        "b": {"type": "wait", "seconds": 3600, "next": "done"},
        **EXIT,
    }  # fmt: skip
    journey = journey_of(tenant_a, people, steps, "ab", goal={"tag": "booked"})
    contacts = [patient(tenant_a, opt_in=False) for _ in range(12)]
    enrol_and_run(tenant_a, journey, contacts)
    with tenant_context(tenant_a):
        on_a = list(Position.objects.filter(journey=journey, step="a").values_list("contact_id", flat=True))
    assert 0 < len(on_a) < len(contacts)
    contacts_tag(tenant=tenant_a, actor=SYSTEM, contact_ids=on_a, tag="booked")

    # The goal is checked when the contacts are next due.
    later = timezone.now() + datetime.timedelta(hours=2)
    while engine.positions_advance(tenant=tenant_a, now=later).advanced:
        pass

    with tenant_context(tenant_a):
        journey.refresh_from_db()
        counts = selectors.split_counts(tenant=tenant_a, journey=journey, step="ab")
        reasons = dict(Position.objects.filter(journey=journey).values_list("contact_id", "exit_reason"))
    assert counts == [
        {"entered": len(on_a), "won": len(on_a)},
        {"entered": len(contacts) - len(on_a), "won": 0},
    ]
    assert {reasons[c] for c in on_a} == {"goal"}
    assert selectors.split_winner(counts) == 0
    assert selectors.split_winner(counts, minimum=len(contacts)) is None  # too few to judge


def test_reentry_never_and_after_days(tenant_a, people):
    steps = {"x": {"type": "update", "add_tag": "seen", "next": "done"}, **EXIT}
    never = journey_of(tenant_a, people, steps, "x", name="Never", reentry="never")
    weekly = journey_of(tenant_a, people, steps, "x", name="Weekly", reentry={"after_days": 7})
    anytime = journey_of(tenant_a, people, steps, "x", name="Anytime")
    contact = patient(tenant_a, opt_in=False)
    now = timezone.now()
    for journey in (never, weekly, anytime):
        enrol_and_run(tenant_a, journey, [contact])
        assert engine.positions_enter(
            tenant=tenant_a, journey=journey, contact_ids=[contact.pk], now=now
        ) == [] or (journey is anytime)

    with pytest.raises(Conflict, match="re-entry"):
        enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=never, contact=contact)
    later = now + datetime.timedelta(days=8)
    assert engine.positions_enter(tenant=tenant_a, journey=never, contact_ids=[contact.pk], now=later) == []
    assert (
        len(engine.positions_enter(tenant=tenant_a, journey=weekly, contact_ids=[contact.pk], now=later)) == 1
    )


def test_step_counts_count_entries_and_exits_from_one_row_per_step(tenant_a, people):
    steps = {
        "x": {"type": "update", "add_tag": "a", "next": "w"},
        "w": {"type": "wait", "seconds": 3600, "next": "done"},
        **EXIT,
    }
    journey = journey_of(tenant_a, people, steps, "x")
    contacts = [patient(tenant_a, opt_in=False) for _ in range(3)]
    enrol_and_run(tenant_a, journey, contacts)
    later = timezone.now() + datetime.timedelta(hours=2)
    while engine.positions_advance(tenant=tenant_a, now=later).advanced:
        pass

    with tenant_context(tenant_a):
        counts = selectors.step_counts(tenant=tenant_a, journey=journey)
        rows = StepLog.objects.filter(journey=journey).count()
    assert counts["x"]["entered"] == counts["w"]["entered"] == counts["done"]["entered"] == 3
    assert counts["done"]["exited"] == 3
    assert counts["w"]["waiting"] == 0
    assert rows == 9  # one row per contact per step: the log is the advance's main write


def test_split_report_is_disclosed(tenant_a, people):
    steps = {
        "ab": {"type": "split", "metric": "open",
               "variants": [{"weight": 1, "next": "done"}, {"weight": 1, "next": "done"}]},
        **EXIT,
    }  # fmt: skip
    journey = journey_of(tenant_a, people, steps, "ab")
    enrol_and_run(tenant_a, journey, [patient(tenant_a, opt_in=False) for _ in range(3)])
    with tenant_context(tenant_a):
        journey.refresh_from_db()
        report = selectors.split_report_disclosed(
            tenant=tenant_a, journey=journey, step="ab", viewer=disclosure.Viewer(key="user:1", phi=False)
        )
    for cell in report["paths"]:  # 3 contacts: every non-zero path is a small cell
        assert cell["entered"].value is None or cell["entered"].empty, cell
    assert report["winner"] is None
