"""The step kinds beyond send/wait/branch: list, set a field, webhook, notify staff, jump (to a step,
to another journey), A/B split with its winner; tag goals; re-entry rules; quiet hours in the
contact's time zone; the frequency cap shared with campaigns."""

from __future__ import annotations

import copy
import datetime
import uuid
import zoneinfo

import pytest
from django.utils import timezone

from contacts.models import Contact
from contacts.tagging import contacts_tag, tag_token
from delivery.models import Message, WebhookDelivery
from delivery.webhooks.services import endpoint_create
from healthmail import disclosure
from healthmail.accounts.roles import Role
from healthmail.errors import Conflict
from healthmail.sysmail.models import SystemMail
from healthmail.tenants.context import tenant_context
from journeys import definition as spec
from journeys import selectors
from journeys.models import Position, StepLog
from journeys.services import engine, enrolment, rules
from tests.campaigns.conftest import person

from .conftest import SYSTEM, activated, definition, patient

pytestmark = pytest.mark.django_db

EXIT = {"done": {"type": "exit"}}


def journey_of(tenant, people, steps, start, name="Steps", **extra):
    body = {"entry": {"kind": "manual"}, "start": start, "steps": copy.deepcopy(steps), **extra}
    return activated(tenant, people, body, name=name)


def enrol_and_run(tenant, journey, contacts, now=None):
    for contact in contacts:
        enrolment.journey_enrol(tenant=tenant, actor=SYSTEM, journey=journey, contact=contact)
    now = now or timezone.now() + datetime.timedelta(seconds=1)
    while engine.positions_advance(tenant=tenant, now=now).advanced:
        pass


def position_of(tenant, journey, contact) -> Position:
    with tenant_context(tenant):
        return Position.objects.filter(journey=journey, contact=contact).order_by("-entered_at").first()


def tags(tenant, contact) -> list[int]:
    with tenant_context(tenant):
        return list(Contact.objects.get(pk=contact.pk).tag_tokens)


@pytest.fixture(autouse=True)
def no_wakeups(monkeypatch):
    from journeys import tasks

    monkeypatch.setattr(tasks, "advance_soon", lambda **kwargs: None)


# --- definitions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "where"),
    [
        ({"type": "list", "list": "Bad List", "action": "add", "next": "done"}, "steps.s.list"),
        ({"type": "list", "list": "recall", "action": "toggle", "next": "done"}, "steps.s.action"),
        ({"type": "webhook", "next": "done"}, "steps.s.endpoint_id"),
        ({"type": "notify", "role": "patient", "subject": "x", "next": "done"}, "steps.s.role"),
        ({"type": "notify", "role": "marketer", "subject": "", "next": "done"}, "steps.s.subject"),
        ({"type": "jump"}, "steps.s"),
        ({"type": "jump", "to": "done", "journey_id": "x"}, "steps.s"),
        (
            {"type": "split", "variants": [{"weight": 1, "next": "done"}], "metric": "open"},
            "steps.s.variants",
        ),
        (
            {"type": "split", "variants": [{"weight": 0, "next": "done"}] * 2, "metric": "open"},
            "steps.s.variants.0.weight",
        ),
        ({"type": "split", "variants": [{"weight": 1, "next": "done"}] * 2, "metric": "x"}, "steps.s.metric"),
        (
            {
                "type": "split",
                "variants": [{"weight": 1, "next": "nowhere"}, {"weight": 1, "next": "done"}],
                "metric": "open",
            },
            "steps.s.variants.0.next",
        ),
        (
            {"type": "update", "set_field": {"field": "email", "value": "x"}, "next": "done"},
            "steps.s.set_field",
        ),
    ],
)
def test_bad_new_steps_are_refused_with_where(step, where):
    body = {"entry": {"kind": "manual"}, "start": "s", "steps": {"s": step, **EXIT}}

    assert where in [p.where for p in spec.problems_of(body)]


@pytest.mark.parametrize(
    "rule",
    [
        {"reentry": "sometimes"},
        {"reentry": {"after_days": 0}},
        {"quiet_hours": {"start": "21:00", "end": "21:00"}},
        {"quiet_hours": {"start": "25:00", "end": "08:00"}},
        {"frequency_cap": {"count": 0, "days": 7}},
        {"goal": {"tag": "Not A Tag"}},
    ],
)
def test_bad_journey_rules_are_refused(rule):
    body = {"entry": {"kind": "manual"}, "start": "done", "steps": dict(EXIT), **rule}

    assert spec.problems_of(body)


def test_jumps_and_splits_forming_a_loop_without_a_wait_are_refused_at_save():
    jump_loop = {
        "a": {"type": "update", "add_tag": "x", "next": "b"},
        "b": {"type": "jump", "to": "a"},
    }
    split_loop = {
        "a": {"type": "split", "metric": "open",
              "variants": [{"weight": 1, "next": "a"}, {"weight": 1, "next": "done"}]},
        **EXIT,
    }  # fmt: skip
    waited = {
        "a": {"type": "wait", "seconds": 3600, "next": "b"},
        "b": {"type": "jump", "to": "a"},
    }
    for steps, refused in ((jump_loop, True), (split_loop, True), (waited, False)):
        body = {"entry": {"kind": "manual"}, "start": "a", "steps": steps}
        assert bool(spec.problems_of(body)) is refused, steps


def test_split_paths_follow_the_weights_and_never_change_for_a_position():
    variants = [{"weight": 80, "next": "a"}, {"weight": 20, "next": "b"}]
    ids = [uuid.uuid4() for _ in range(2000)]
    paths = [spec.split_path(i, "ab", variants) for i in ids]

    assert 0.75 < paths.count(0) / len(paths) < 0.85
    assert paths == [spec.split_path(i, "ab", variants) for i in ids]  # a retried walk takes the same path


def test_quiet_hours_over_midnight_end_next_morning_local_time():
    zone = zoneinfo.ZoneInfo("America/Chicago")
    start, end = datetime.time(21, 0), datetime.time(8, 0)
    late = datetime.datetime(2027, 3, 9, 22, 30, tzinfo=zone)
    early = datetime.datetime(2027, 3, 10, 6, 0, tzinfo=zone)
    noon = datetime.datetime(2027, 3, 10, 12, 0, tzinfo=zone)

    assert rules.quiet_end(late, start, end) == datetime.datetime(2027, 3, 10, 8, 0, tzinfo=zone)
    assert rules.quiet_end(early, start, end) == datetime.datetime(2027, 3, 10, 8, 0, tzinfo=zone)
    assert rules.quiet_end(noon, start, end) is None


# --- the engine ----------------------------------------------------------------------------------


def test_list_and_field_steps_change_the_contacts(tenant_a, people):
    steps = {
        "add": {"type": "list", "list": "recall", "action": "add", "next": "lang"},
        "lang": {"type": "update", "set_field": {"field": "language", "value": "es"}, "next": "drop"},
        "drop": {"type": "list", "list": "lapsed", "action": "remove", "next": "done"},
        **EXIT,
    }
    journey = journey_of(tenant_a, people, steps, "add")
    contact = patient(tenant_a, opt_in=False)
    contacts_tag(tenant=tenant_a, actor=SYSTEM, contact_ids=[contact.pk], tag="list.lapsed")

    enrol_and_run(tenant_a, journey, [contact])

    assert tags(tenant_a, contact) == [tag_token(tenant_a, "list.recall")]
    with tenant_context(tenant_a):
        assert Contact.objects.get(pk=contact.pk).language == "es"
    assert position_of(tenant_a, journey, contact).exit_reason == "completed"


def test_a_webhook_step_queues_one_signed_delivery_per_contact_with_ids_only(tenant_a, people):
    endpoint = endpoint_create(
        tenant=tenant_a,
        actor=SYSTEM,
        url="https://hooks.example.com/journeys",
        event_types=["message.delivered"],
        resolve=lambda host, port: ["93.184.216.34"],
    ).endpoint
    steps = {"hook": {"type": "webhook", "endpoint_id": str(endpoint.pk), "next": "done"}, **EXIT}
    journey = journey_of(tenant_a, people, steps, "hook")
    contacts = [patient(tenant_a, opt_in=False) for _ in range(2)]

    enrol_and_run(tenant_a, journey, contacts)

    with tenant_context(tenant_a):
        deliveries = list(WebhookDelivery.objects.filter(endpoint=endpoint, event_type="journey.step"))
    assert sorted(d.payload["contact_id"] for d in deliveries) == sorted(str(c.pk) for c in contacts)
    payload = deliveries[0].payload
    assert set(payload) == {
        "event", "event_id", "journey_id", "version", "step", "position_id", "contact_id", "occurred_at",
        "delivery_id",
    }  # fmt: skip
    assert payload["step"] == "hook"
    assert payload["delivery_id"] == str(deliveries[0].pk)


def test_a_webhook_step_needs_an_endpoint_of_the_same_organization(tenant_a, tenant_b, people):
    foreign = endpoint_create(
        tenant=tenant_b,
        actor=SYSTEM,
        url="https://hooks.example.com/b",
        event_types=["message.delivered"],
        resolve=lambda host, port: ["93.184.216.34"],
    ).endpoint
    steps = {"hook": {"type": "webhook", "endpoint_id": str(foreign.pk), "next": "done"}, **EXIT}

    with pytest.raises(spec.DefinitionInvalid) as refused:
        journey_of(tenant_a, people, steps, "hook")
    assert refused.value.extra["problems"][0]["where"] == "steps.hook.endpoint_id"


def test_notify_mails_the_staff_of_the_role_with_links_not_names(tenant_a, people):
    coordinator = person(tenant_a, Role.CLINICAL_REVIEWER)
    steps = {
        "tell": {"type": "notify", "role": "clinical_reviewer", "subject": "Follow up", "next": "done"},
        **EXIT,
    }
    journey = journey_of(tenant_a, people, steps, "tell")
    contact = patient(tenant_a, opt_in=False)

    enrol_and_run(tenant_a, journey, [contact])

    with tenant_context(tenant_a):
        (mail,) = SystemMail.objects.filter(topic="journeys.notify")
    assert mail.recipient_user_id == coordinator.user.pk
    assert f"/contacts/{contact.pk}/" in mail.content["body"]
    assert contact.email not in mail.content["body"]


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


def test_quiet_hours_hold_the_email_until_morning_in_the_contacts_zone(tenant_a, people, ready):
    send = {
        "type": "send", "template_id": str(ready["template"].pk), "purpose": "marketing",
        "topic": "marketing_newsletters", "next": "done",
    }  # fmt: skip
    body = definition(
        template_id=ready["template"].pk,
        sender_domain_id=ready["sender_domain"].pk,
        entry={"kind": "manual"},
        start="mail",
        steps={"mail": send, **EXIT},
        quiet_hours={"start": "21:00", "end": "08:00"},
    )
    journey = activated(tenant_a, people, body)
    contact = patient(tenant_a)
    with tenant_context(tenant_a):
        Contact.objects.filter(pk=contact.pk).update(state="CA")
    pacific = zoneinfo.ZoneInfo("America/Los_Angeles")
    night = datetime.datetime(2027, 3, 10, 23, 0, tzinfo=pacific)
    morning = datetime.datetime(2027, 3, 11, 8, 0, tzinfo=pacific)

    enrol_and_run(tenant_a, journey, [contact], now=night)
    held = position_of(tenant_a, journey, contact)
    with tenant_context(tenant_a):
        assert not Message.objects.filter(contact=contact, source_type="journey").exists()
    assert (held.step, held.due_at) == ("mail", morning)

    while engine.positions_advance(tenant=tenant_a, now=morning).advanced:
        pass
    with tenant_context(tenant_a):
        assert Message.objects.filter(contact=contact, source_type="journey").count() == 1
        done = Position.objects.get(pk=held.pk)
        assert done.exit_reason == "completed"
        assert done.visits == {"mail": 1, "done": 1}


def test_the_frequency_cap_counts_campaign_and_journey_email_together(tenant_a, people, ready):
    from delivery.outbox import OutboxRecipient, message_enqueue_many

    send = {
        "type": "send", "template_id": str(ready["template"].pk), "purpose": "marketing",
        "topic": "marketing_newsletters", "next": "done",
    }  # fmt: skip
    body = definition(
        template_id=ready["template"].pk,
        sender_domain_id=ready["sender_domain"].pk,
        entry={"kind": "manual"},
        start="mail",
        steps={"mail": send, **EXIT},
        frequency_cap={"count": 1, "days": 7},
    )
    journey = activated(tenant_a, people, body)
    capped, free = patient(tenant_a), patient(tenant_a)
    message_enqueue_many(
        tenant=tenant_a, stream="marketing", source_type="campaign", source_id=str(uuid.uuid4()),
        purpose="marketing", topic="marketing_newsletters", uses_phi=False,
        sender_domain=ready["sender_domain"], recipients=[OutboxRecipient(capped.pk, capped.email)],
    )  # fmt: skip

    enrol_and_run(tenant_a, journey, [capped, free])

    with tenant_context(tenant_a):
        journey_mail = set(Message.objects.filter(source_type="journey").values_list("contact_id", flat=True))
        skipped = StepLog.objects.get(journey=journey, contact=capped, step="mail")
    assert journey_mail == {free.pk}
    assert (skipped.outcome, skipped.detail) == ("skipped", "frequency_cap")
    assert position_of(tenant_a, journey, capped).exit_reason == "completed"


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


def test_a_new_version_takes_contacts_at_safe_steps_and_leaves_the_rest(tenant_a, people):
    from journeys.services import journeys as journey_services

    first = {
        "a": {"type": "wait", "seconds": 3600, "next": "b"},
        "b": {"type": "wait_event", "event": "visit.done", "timeout_seconds": 3600, "next": "done",
              "timeout_next": "done"},
        **EXIT,
    }  # fmt: skip
    journey = journey_of(tenant_a, people, first, "a")
    resting, further, fresh = (patient(tenant_a, opt_in=False) for _ in range(3))
    now = timezone.now() + datetime.timedelta(seconds=1)
    enrol_and_run(tenant_a, journey, [resting, further], now=now)
    engine.positions_advance(
        tenant=tenant_a,
        now=now + datetime.timedelta(hours=2),
        ids=[position_of(tenant_a, journey, further).pk],
    )
    enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=fresh)
    old_version = journey.live_version_id
    second = {
        "entry": {"kind": "manual"},
        "start": "a",
        "steps": {
            "a": {"type": "wait", "seconds": 7200, "next": "x"},
            "x": {"type": "update", "add_tag": "second", "next": "done"},
            **EXIT,
        },
    }
    marketer, compliance = people["marketer"], people["compliance"]
    version = journey_services.journey_edit(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, journey=journey, definition=second
    )
    journey_services.journey_submit(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, version=version
    )
    journey_services.journey_approve(
        tenant=tenant_a, actor=compliance.actor, role=compliance.role, version=version
    )
    journey_services.journey_activate(
        tenant=tenant_a,
        actor=marketer.actor,
        role=marketer.role,
        journey=journey,
        version=version,
        move="safe",
    )

    versions = {c: position_of(tenant_a, journey, c).version_id for c in (resting, further, fresh)}
    assert versions == {resting: version.pk, further: old_version, fresh: version.pk}
    assert position_of(tenant_a, journey, resting).step == "a"  # its wait's end is kept
    later = now + datetime.timedelta(hours=3)
    while engine.positions_advance(tenant=tenant_a, now=later).advanced:
        pass
    assert tags(tenant_a, resting) == [tag_token(tenant_a, "second")]  # it went on the new way
    assert tags(tenant_a, further) == []
    assert position_of(tenant_a, journey, further).exit_reason == "completed"  # the old way


def test_a_consent_change_starts_the_journeys_it_triggers(tenant_a, people):
    from consent import services as consent
    from tests.delivery.engine_support import evidence

    steps = {"x": {"type": "notify", "role": "marketer", "subject": "Opted out", "next": "done"}, **EXIT}
    body = {
        "entry": {"kind": "consent", "topic": "marketing_newsletters", "change": "revoked"},
        "start": "x",
        "steps": steps,
    }
    journey = activated(tenant_a, people, body, name="Opt-out follow-up")
    leaving, staying = patient(tenant_a), patient(tenant_a, opt_in=False)
    topic = consent.topic_by_key(tenant=tenant_a, key="marketing_newsletters")

    consent.consent_revoke(tenant=tenant_a, contact=leaving, topic=topic, evidence=evidence())
    consent.consent_grant(tenant=tenant_a, contact=staying, topic=topic, evidence=evidence())

    with tenant_context(tenant_a):
        inside = set(Position.objects.filter(journey=journey).values_list("contact_id", flat=True))
    assert inside == {leaving.pk}


def test_a_consent_trigger_names_a_topic_of_the_organization(tenant_a, people):
    body = {
        "entry": {"kind": "consent", "topic": "no_such_topic", "change": "granted"},
        "start": "done",
        "steps": dict(EXIT),
    }
    with pytest.raises(spec.DefinitionInvalid) as refused:
        activated(tenant_a, people, body)
    assert refused.value.extra["problems"][0]["where"] == "entry.topic"


def test_opens_wake_the_journeys_wait_and_start_engagement_journeys(tenant_a, people, ready):
    from delivery.tracking.services import engagement_record
    from delivery.tracking.tokens import OPEN, TrackingToken

    send = {
        "type": "send", "template_id": str(ready["template"].pk), "purpose": "marketing",
        "topic": "marketing_newsletters", "next": "opened",
    }  # fmt: skip
    steps = {
        "mail": send,
        "opened": {"type": "wait_event", "event": "email.opened", "timeout_seconds": 3 * 86400,
                   "next": "thanks", "timeout_next": "nudge"},
        "thanks": {"type": "update", "add_tag": "opened", "next": "done"},
        "nudge": {"type": "update", "add_tag": "not_opened", "next": "done"},
        **EXIT,
    }  # fmt: skip
    body = definition(
        template_id=ready["template"].pk,
        sender_domain_id=ready["sender_domain"].pk,
        entry={"kind": "manual"},
        start="mail",
        steps=steps,
    )
    journey = activated(tenant_a, people, body)
    followers = journey_of(
        tenant_a, people, {"x": {"type": "wait", "seconds": 3600, "next": "done"}, **EXIT}, "x",
        name="Engaged", entry={"kind": "engagement", "action": "opened"},
    )  # fmt: skip
    reader, ignorer = patient(tenant_a), patient(tenant_a)
    enrol_and_run(tenant_a, journey, [reader, ignorer])
    with tenant_context(tenant_a):
        message = Message.objects.get(contact=reader, source_type="journey")
        Message.objects.filter(pk=message.pk).update(
            state=Message.State.DELIVERED_TLS, finished_at=timezone.now() - datetime.timedelta(minutes=5)
        )
        message.refresh_from_db()

    engagement_record(
        token=TrackingToken(OPEN, tenant_a.pk, message.pk),
        user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126 Safari/537.36",
        ip="203.0.113.9",
    )
    while engine.positions_advance(
        tenant=tenant_a, now=timezone.now() + datetime.timedelta(seconds=5)
    ).advanced:
        pass
    assert tags(tenant_a, reader) == [tag_token(tenant_a, "opened")]
    assert tags(tenant_a, ignorer) == []  # still waiting: nobody else was woken
    later = timezone.now() + datetime.timedelta(days=3, minutes=1)
    while engine.positions_advance(tenant=tenant_a, now=later).advanced:
        pass
    assert tags(tenant_a, ignorer) == [tag_token(tenant_a, "not_opened")]  # did not open within 3 days
    assert position_of(tenant_a, followers, reader) is not None  # the open started this journey
    assert position_of(tenant_a, followers, ignorer) is None
