"""Branch conditions the engine answers for a whole group at once: a field of the contact, and
engagement with this journey's email since the contact entered (a human open: bot opens and opens
before entering do not count). The tag and consent conditions are exercised end to end and by the
state machine."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from contacts.models import Contact
from contacts.tagging import tag_token
from delivery.models import EngagementEvent
from healthmail.tenants.context import tenant_context

from .conftest import SYSTEM, patient
from .steps_support import EXIT, journey_of, position_of, tags

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_wakeups")]


def _branching(tenant, people, condition):
    steps = {
        "w": {"type": "wait", "seconds": 3600, "next": "check"},
        "check": {"type": "branch", "condition": condition, "yes": "mark", "no": "done"},
        "mark": {"type": "update", "add_tag": "yes_path", "next": "done"},
        **EXIT,
    }
    return journey_of(tenant, people, steps, "w", name="Branching")


def _run(tenant, journey, contacts, before_wait_ends=None):
    from journeys.services import engine, enrolment

    for contact in contacts:
        enrolment.journey_enrol(tenant=tenant, actor=SYSTEM, journey=journey, contact=contact)
    now = timezone.now() + datetime.timedelta(seconds=1)
    while engine.positions_advance(tenant=tenant, now=now).advanced:
        pass
    if before_wait_ends:
        before_wait_ends()
    later = now + datetime.timedelta(hours=2)
    while engine.positions_advance(tenant=tenant, now=later).advanced:
        pass


def _yes(tenant, contacts) -> set:
    token = tag_token(tenant, "yes_path")
    return {name for name, contact in contacts.items() if token in tags(tenant, contact)}


def test_a_branch_on_a_field_sends_each_contact_its_own_way(tenant_a, people):
    journey = _branching(tenant_a, people, {"field": "state", "equals": "CA"})
    contacts = {"ca": patient(tenant_a, opt_in=False), "ny": patient(tenant_a, opt_in=False)}
    with tenant_context(tenant_a):
        Contact.objects.filter(pk=contacts["ca"].pk).update(state="CA")
        Contact.objects.filter(pk=contacts["ny"].pk).update(state="NY")

    _run(tenant_a, journey, contacts.values())

    assert _yes(tenant_a, contacts) == {"ca"}
    assert {position_of(tenant_a, journey, c).exit_reason for c in contacts.values()} == {"completed"}


def test_a_branch_on_engagement_counts_human_opens_of_this_journeys_email_since_entry(tenant_a, people):
    journey = _branching(tenant_a, people, {"engagement": "open"})
    contacts = {
        name: patient(tenant_a, opt_in=False)
        for name in ("opened", "bot_only", "opened_before", "other_source")
    }
    source_id = f"{journey.live_version_id}:mail"

    def _open(contact, *, at, bot=False, source=source_id):
        EngagementEvent.objects.create(
            tenant=tenant_a, contact=contact, kind="open", occurred_at=at, is_bot=bot,
            bot_reason="apple_mpp" if bot else "", source_type="journey", source_id=source,
        )  # fmt: skip

    with tenant_context(tenant_a):
        _open(contacts["opened_before"], at=timezone.now() - datetime.timedelta(days=1))

    def opens():
        with tenant_context(tenant_a):
            at = timezone.now() + datetime.timedelta(minutes=30)
            _open(contacts["opened"], at=at)
            _open(contacts["bot_only"], at=at, bot=True)
            _open(contacts["other_source"], at=at, source="00000000-0000-0000-0000-000000000000:mail")

    _run(tenant_a, journey, contacts.values(), before_wait_ends=opens)

    assert _yes(tenant_a, contacts) == {"opened"}
