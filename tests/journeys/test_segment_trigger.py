"""The segment-join trigger: contacts enter when a change moves them into the segment, evaluated for
the changed contacts only; staying inside never enrols again; the daily reconcile catches what time
alone changed."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts import tagging
from contacts.services import ContactInput, contact_upsert
from healthmail.tenants.context import tenant_context
from journeys import tasks
from journeys.definition import DefinitionInvalid
from journeys.models import Journey, Position, SegmentCheck, SegmentMember
from journeys.services import enrolment, segments
from segmentation.models import Segment
from tests.campaigns.conftest import segment

from .conftest import SYSTEM, active_journey, patient

pytestmark = pytest.mark.django_db

POST_VISIT = {"field": "journey_stage", "op": "eq", "value": "post_visit"}
WAIT = {"wait": {"type": "wait", "seconds": 3600, "next": "done"}, "done": {"type": "exit"}}


def segment_journey(tenant, definition=POST_VISIT, **extra):
    audience = segment(tenant, definition, name=f"Audience {definition}")
    journey = active_journey(tenant, entry={"kind": "segment", "segment_id": str(audience.pk)}, steps=WAIT)
    if extra:
        with tenant_context(tenant):
            version = journey.live_version
            version.definition = {**version.definition, **extra}
            version.save(update_fields=["definition"])
    return journey


def stage(tenant, contact, value: str):
    with tenant_context(tenant):
        tagging.contacts_journey_stage_set(tenant=tenant, actor=SYSTEM, contact_ids=[contact.pk], stage=value)


def positions(tenant, journey) -> list:
    with tenant_context(tenant):
        return list(Position.objects.filter(journey=journey).values_list("contact_id", "state"))


def check(tenant) -> segments.CheckResult:
    return segments.segment_checks_apply(tenant=tenant)


def test_a_contact_changed_into_the_segment_enters_once_and_staying_inside_does_not_enrol_again(tenant_a):
    journey = segment_journey(tenant_a)
    contact = patient(tenant_a, opt_in=False)

    stage(tenant_a, contact, "post_visit")
    result = check(tenant_a)
    assert (result.evaluated, result.joined, result.entered) == (1, 1, 1)
    assert positions(tenant_a, journey) == [(contact.pk, Position.State.WAITING)]

    # Still a member after another change (a tag): no second entry, even once it has left the journey.
    enrolment.journey_remove(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)
    tagging.contacts_tag(tenant=tenant_a, actor=SYSTEM, contact_ids=[contact.pk], tag="seen")
    result = check(tenant_a)
    assert (result.evaluated, result.joined, result.entered) == (1, 0, 0)
    assert len(positions(tenant_a, journey)) == 1


def test_an_upsert_into_the_segment_enters_and_members_at_activation_do_not(tenant_a):
    before = patient(tenant_a, opt_in=False)
    stage(tenant_a, before, "post_visit")
    journey = segment_journey(tenant_a)
    with tenant_context(tenant_a):
        assert list(SegmentMember.objects.filter(journey=journey).values_list("contact_id", flat=True)) == [
            before.pk
        ]

    contact_upsert(
        tenant=tenant_a,
        actor=SYSTEM,
        data=ContactInput(email="joiner@good.test", journey_stage="post_visit"),
        source="api",
    )
    contact_upsert(
        tenant=tenant_a,
        actor=SYSTEM,
        data=ContactInput(email="outsider@good.test", journey_stage="active"),
        source="api",
    )
    stage(tenant_a, before, "post_visit")  # unchanged: not even a check
    result = check(tenant_a)

    assert (result.evaluated, result.entered) == (2, 1)
    assert [state for _, state in positions(tenant_a, journey)] == [Position.State.WAITING]
    assert before.pk not in {c for c, _ in positions(tenant_a, journey)}


@pytest.mark.parametrize(("reentry", "enters_again"), [("after_exit", True), ("never", False)])
def test_leaving_and_joining_again_follows_the_reentry_rule(tenant_a, reentry, enters_again):
    journey = segment_journey(tenant_a, reentry=reentry)
    contact = patient(tenant_a, opt_in=False)
    stage(tenant_a, contact, "post_visit")
    check(tenant_a)
    enrolment.journey_remove(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)

    stage(tenant_a, contact, "active")
    left = check(tenant_a)
    stage(tenant_a, contact, "post_visit")
    joined = check(tenant_a)

    assert (left.left, joined.joined) == (1, 1)
    assert joined.entered == (1 if enters_again else 0)
    assert len(positions(tenant_a, journey)) == (2 if enters_again else 1)


def test_contacts_of_another_tenant_never_enter(tenant_a, tenant_b):
    journey = segment_journey(tenant_a)
    foreign = patient(tenant_b, opt_in=False)

    stage(tenant_b, foreign, "post_visit")

    with tenant_context(tenant_b):
        assert not SegmentCheck.objects.filter(tenant=tenant_b).exists()  # tenant B has no such journey
    # Even a check row naming a foreign contact finds no member: the query is the tenant's.
    with tenant_context(tenant_a):
        members = segments.segment_members_among(
            tenant=tenant_a,
            definition=journey.live_version.definition["entry"]["segment_definition"],
            contact_ids=[foreign.pk],
        )
    assert members == set()
    assert check(tenant_a).evaluated == 0
    assert positions(tenant_a, journey) == []


def test_the_check_reads_only_the_changed_contacts(tenant_a):
    journey = segment_journey(tenant_a)
    others = [patient(tenant_a, opt_in=False) for _ in range(30)]
    with tenant_context(tenant_a):
        tagging.contacts_journey_stage_set(
            tenant=tenant_a, actor=SYSTEM, contact_ids=[c.pk for c in others], stage="post_visit"
        )
    check(tenant_a)  # the thirty are members now
    contact = patient(tenant_a, opt_in=False)
    stage(tenant_a, contact, "post_visit")

    with CaptureQueriesContext(connection) as queries:
        result = check(tenant_a)

    assert (result.evaluated, result.entered) == (1, 1)
    segment_reads = [q["sql"] for q in queries if 'FROM "contacts_contact" c' in q["sql"]]
    assert len(segment_reads) == 1
    assert "c.id = ANY(" in segment_reads[0]
    # The one read's plan touches only the rows named: its estimate is the id list, not the tenant.
    with connection.cursor() as cursor, tenant_context(tenant_a):
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + segment_reads[0].split("ORDER BY")[0])
        plan = cursor.fetchone()[0][0]["Plan"]
    assert plan["Actual Rows"] <= 1
    assert len(positions(tenant_a, journey)) == 31


def test_the_trigger_waits_until_the_journey_is_active(tenant_a):
    journey = segment_journey(tenant_a)
    with tenant_context(tenant_a):
        Journey.objects.filter(pk=journey.pk).update(status=Journey.Status.PAUSED)
    contact = patient(tenant_a, opt_in=False)
    stage(tenant_a, contact, "post_visit")
    with tenant_context(tenant_a):
        assert not SegmentCheck.objects.exists()  # nothing queued for a paused journey


def test_the_daily_reconcile_enters_contacts_that_time_alone_moved_in(tenant_a):
    """Age comes from the birth year: a contact turns 65 on 1 January without any write."""
    journey = segment_journey(tenant_a, {"field": "age", "op": "gte", "value": 65})
    contact = patient(tenant_a, opt_in=False)
    now = timezone.now()
    with tenant_context(tenant_a):
        contact.birth_year = now.year - 64
        contact.save(update_fields=["birth_year"])
    assert check(tenant_a).entered == 0

    later = now.replace(year=now.year + 1)
    with tenant_context(tenant_a):
        journey.refresh_from_db()
    entered = segments_reconcile(tenant_a, journey, later)
    again = segments_reconcile(tenant_a, journey, later)

    assert (entered, again) == (1, 0)
    assert positions(tenant_a, journey) == [(contact.pk, Position.State.WAITING)]


def segments_reconcile(tenant, journey, moment: datetime.datetime) -> int:
    return segments.segment_members_reconcile(tenant=tenant, journey=journey, now=moment)


def test_the_sweep_finds_checks_whose_wake_up_was_lost(tenant_a, monkeypatch):
    segment_journey(tenant_a)
    contact = patient(tenant_a, opt_in=False)
    stage(tenant_a, contact, "post_visit")  # its after-commit wake-up never runs in this test
    sent = []
    monkeypatch.setattr(tasks.journeys_segment_checks, "apply_async", lambda **kw: sent.append(kw))
    monkeypatch.setattr(tasks.journeys_segment_reconcile, "apply_async", lambda **kw: None)
    monkeypatch.setattr(tasks.journeys_advance_due, "apply_async", lambda **kw: None)

    tasks.journeys_sweep()

    assert sent == [{"kwargs": {"tenant_id": str(tenant_a.pk)}}]


def test_a_segment_of_another_organization_cannot_start_a_journey(tenant_a, tenant_b):
    foreign = segment(tenant_b, POST_VISIT, name="Their audience")

    with pytest.raises(DefinitionInvalid) as refused:
        active_journey(tenant_a, entry={"kind": "segment", "segment_id": str(foreign.pk)}, steps=WAIT)

    assert refused.value.extra["problems"] == [
        {"where": "entry.segment_id", "message": "No such segment in this organization."}
    ]


def test_the_version_keeps_the_segment_as_approved(tenant_a):
    journey = segment_journey(tenant_a)
    with tenant_context(tenant_a):
        Segment.objects.filter(tenant=tenant_a).update(definition={"all": []})  # edited after approval
    contact = patient(tenant_a, opt_in=False)
    stage(tenant_a, contact, "active")

    assert check(tenant_a).entered == 0  # still "post-visit", as approved
    assert journey.live_version.definition["entry"]["segment_definition"] == POST_VISIT
