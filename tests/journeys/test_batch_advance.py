"""The batch advance that moves a backlog of due contacts (a date step come due for everyone): each
contact takes the path once, the step log has one row per step it entered, and the audit events of
the batch that moved it name it (one event per batch listing every contact, not one per contact)."""

from __future__ import annotations

import datetime
import uuid
from collections import Counter

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from contacts.models import Contact
from contacts.tagging import tag_token
from healthmail.tenants.context import tenant_context
from journeys.models import Position, StepLog
from journeys.services import engine, enrolment

from .conftest import SYSTEM, active_journey, patient

pytestmark = pytest.mark.django_db

RECALL = {
    "wait": {"type": "wait", "seconds": 3600, "next": "tag"},
    "tag": {"type": "update", "add_tag": "recalled", "next": "done"},
    "done": {"type": "exit"},
}


@pytest.fixture(autouse=True)
def no_wakeups(monkeypatch):
    from journeys import tasks

    monkeypatch.setattr(tasks, "advance_soon", lambda **kwargs: None)


def _events(tenant, action: str, after: int) -> list[AuditEvent]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action=action, pk__gt=after).order_by("pk"))


def test_a_backlog_moves_once_in_batches_each_contact_logged_and_named_by_its_batch(
    tenant_a, people, settings
):
    settings.JOURNEYS_ADVANCE_BATCH = 2  # five contacts: three batches
    journey = active_journey(tenant_a, steps=RECALL)
    contacts = [patient(tenant_a, domain=f"d{i}.test") for i in range(5)]
    now = timezone.now() + datetime.timedelta(seconds=1)
    for contact in contacts:
        enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)
    assert engine.positions_advance_all(tenant=tenant_a, now=now) == 5  # all now wait an hour
    with tenant_context(tenant_a):
        before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()

    due = now + datetime.timedelta(hours=1, seconds=1)
    assert engine.positions_advance_all(tenant=tenant_a, now=due) == 5
    assert engine.positions_advance_all(tenant=tenant_a, now=due) == 0  # nothing moves twice

    ids = {c.pk for c in contacts}
    advances = _events(tenant_a, "journeys.advance", before)
    assert [e.details["advanced"] for e in advances] == [2, 2, 1]
    named = Counter(contact_id for e in advances for contact_id in e.contact_ids)
    assert set(named) == ids
    assert set(named.values()) == {1}  # each contact in exactly one batch's event
    tagged = _events(tenant_a, "contacts.tag_add", before)
    assert sorted(len(e.contact_ids) for e in tagged) == [1, 2, 2]
    assert {contact_id for e in tagged for contact_id in e.contact_ids} == ids
    with tenant_context(tenant_a):
        rows = Counter(
            StepLog.objects.filter(journey=journey, at=due).values_list("contact_id", "step", "outcome")
        )
        assert rows == Counter(
            [(c, "tag", StepLog.Outcome.UPDATED) for c in ids]
            + [(c, "done", StepLog.Outcome.EXITED) for c in ids]
        )
        positions = Position.objects.filter(journey=journey)
        assert {(p.state, p.exit_reason, p.visits["tag"], p.visits["done"]) for p in positions} == {
            ("exited", "completed", 1, 1)
        }
        token = tag_token(tenant_a, "recalled")
        assert Contact.objects.filter(pk__in=ids, tag_tokens__contains=[token]).count() == 5


def test_step_log_ids_are_time_ordered_so_a_contacts_rows_of_one_advance_sort_as_taken(tenant_a, people):
    """The log's ids are uuidv7 (inserts append to the right edge of the primary key), generated in
    the order the steps were taken: within one advance (one `at`), (at, id) gives the contact's
    history in order. Random ids put the exit before the tag half of the time."""
    journey = active_journey(tenant_a, steps=RECALL)
    contacts = [patient(tenant_a, domain=f"o{i}.test") for i in range(12)]
    for contact in contacts:
        enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)
    # After the enrolments: on a loaded machine twelve of them can take longer than a second, and a
    # contact enrolled after `now` would only enter its wait at `due`.
    now = timezone.now() + datetime.timedelta(seconds=1)
    assert engine.positions_advance_all(tenant=tenant_a, now=now) == 12
    due = now + datetime.timedelta(hours=1, seconds=1)
    assert engine.positions_advance_all(tenant=tenant_a, now=due) == 12
    with tenant_context(tenant_a):
        rows = list(StepLog.objects.filter(journey=journey, at=due).order_by("at", "pk"))
    assert {row.pk.version for row in rows} == {7}
    for contact in contacts:
        assert [row.step for row in rows if row.contact_id == contact.pk] == ["tag", "done"]


def test_a_write_that_misses_a_position_of_the_batch_fails_instead_of_dropping_its_log_rows(tenant_a, people):
    """The log rows take their journey, version and contact from the positions the same statement
    updated: a position the update did not find would lose its rows silently, so the write counts
    both and raises (the advance's transaction rolls back)."""
    journey = active_journey(tenant_a)
    contact = patient(tenant_a)
    enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)
    now = timezone.now() + datetime.timedelta(seconds=1)
    with tenant_context(tenant_a):
        (claimed,) = engine._claim(tenant_a, now, 10)
        claimed.id = uuid.uuid4()  # no such position
        logs = [engine._Logged(claimed, "wait", StepLog.Outcome.WAITING, "", None)]
        with pytest.raises(RuntimeError, match="wrote 0 of 1 positions, 0 of 1 log rows"):
            engine._write(tenant_a, [claimed], logs, now)


def test_a_contacts_history_and_deletion_go_through_its_positions(tenant_a, people):
    """The step log has no index on the contact: the contact page reads a contact's rows by its
    positions, and deleting a contact removes its rows with its positions, nobody else's."""
    from journeys import selectors

    journey = active_journey(tenant_a, steps=RECALL)
    gone, kept = patient(tenant_a, opt_in=False), patient(tenant_a, opt_in=False)  # no consent rows
    now = timezone.now() + datetime.timedelta(seconds=1)
    for contact in (gone, kept):
        enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)
    engine.positions_advance_all(tenant=tenant_a, now=now)
    engine.positions_advance_all(tenant=tenant_a, now=now + datetime.timedelta(hours=1, seconds=1))
    with tenant_context(tenant_a):
        [(position, logs)] = selectors.contact_history(tenant=tenant_a, contact=gone)
        assert position.contact_id == gone.pk
        assert [(log.step, log.outcome) for log in logs] == [
            ("wait", StepLog.Outcome.WAITING),
            ("tag", StepLog.Outcome.UPDATED),
            ("done", StepLog.Outcome.EXITED),
        ]
        assert {log.contact_id for log in logs} == {gone.pk}
        Contact.objects.filter(pk=gone.pk).delete()
        assert not StepLog.objects.filter(contact_id=gone.pk).exists()
        assert StepLog.objects.filter(contact_id=kept.pk).count() == 3
        assert [len(logs) for _, logs in selectors.contact_history(tenant=tenant_a, contact=kept)] == [3]
