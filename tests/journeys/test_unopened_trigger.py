"""The "did not open within N days" entry trigger (journeys/services/unopened.py): a contact who
left the watched email (a journey's send step or a campaign) unopened for N days enters, once; one
who opened or clicked it does not; machine opens (Apple MPP, scanners) are no opens; the send step
of the journey still asks the send gate; other organizations' deliveries and sends stay theirs."""

from __future__ import annotations

import datetime
import hashlib
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone

from consent import services as consent
from delivery.models import Message, TrackedUrl
from delivery.outbox import OutboxRecipient, message_enqueue_many
from delivery.tracking.services import engagement_record
from delivery.tracking.tokens import CLICK, OPEN, TrackingToken
from healthmail.tenants.context import tenant_context
from journeys import definition as spec
from journeys import tasks
from journeys.models import Journey, Position, StepLog
from journeys.services import engine, unopened
from journeys.services import journeys as journey_services
from tests.campaigns.conftest import draft, segment, verified_domain
from tests.campaigns.conftest import template as campaign_template
from tests.delivery.engine_support import evidence

from .conftest import activated, definition, patient
from .steps_support import EXIT, enrol_and_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_wakeups")]
HUMAN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126 Safari/537.36"
DAYS = 3


def _send(ready, next_step: str = "done") -> dict:
    return {
        "type": "send", "template_id": str(ready["template"].pk), "purpose": "marketing",
        "topic": "marketing_newsletters", "next": next_step,
    }  # fmt: skip


def _mail_journey(tenant, people, ready, name: str = "Newsletter"):
    body = definition(
        template_id=ready["template"].pk,
        sender_domain_id=ready["sender_domain"].pk,
        entry={"kind": "manual"},
        start="mail",
        steps={"mail": _send(ready), **EXIT},
    )
    return activated(tenant, people, body, name=name)


def _follower(tenant, people, ready, watched: dict, *, days: int = DAYS, name: str = "Nudge"):
    """A journey entered by not opening `watched` within `days`: one marketing email, then exit."""
    body = definition(
        template_id=ready["template"].pk,
        sender_domain_id=ready["sender_domain"].pk,
        entry={"kind": "engagement", "action": "not_opened", "days": days, **watched},
        start="nudge",
        steps={"nudge": _send(ready), **EXIT},
    )
    return activated(tenant, people, body, name=name)


def _delivered(tenant, messages, at) -> None:
    with tenant_context(tenant):
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(
            state=Message.State.DELIVERED_TLS, finished_at=at
        )


def _open(tenant, message, at, *, user_agent: str = HUMAN, ip: str = "203.0.113.9") -> None:
    engagement_record(token=TrackingToken(OPEN, tenant.pk, message.pk), user_agent=user_agent, ip=ip, now=at)


def _click(tenant, message, at) -> None:
    with tenant_context(tenant):
        url = "https://clinic.example.org/book"
        link = TrackedUrl.objects.create(
            tenant=tenant, url=url, url_hash=hashlib.sha256(url.encode()).hexdigest()
        )
    engagement_record(
        token=TrackingToken(CLICK, tenant.pk, message.pk, link.pk), user_agent=HUMAN, ip="203.0.113.9", now=at
    )


def _inside(tenant, journey) -> dict:
    """{contact id: positions} of the journey, every state."""
    with tenant_context(tenant):
        found: dict = {}
        for contact_id in Position.objects.filter(journey=journey).values_list("contact_id", flat=True):
            found[contact_id] = found.get(contact_id, 0) + 1
        return found


def _journey_messages(tenant, journey_name: str, contact) -> int:
    with tenant_context(tenant):
        journey = Journey.objects.get(name=journey_name)
        return Message.objects.filter(
            contact=contact, source_type="journey", source_id__startswith=f"{journey.live_version_id}:"
        ).count()


def _mailed(tenant, people, ready, contacts):
    """The newsletter journey sends its email to `contacts` (each one message), delivered an hour ago."""
    source = _mail_journey(tenant, people, ready)
    follower = _follower(tenant, people, ready, {"journey_id": str(source.pk), "step": "mail"})
    enrol_and_run(tenant, source, contacts)
    with tenant_context(tenant):
        messages = {
            m.contact_id: m
            for m in Message.objects.filter(
                contact__in=contacts, source_id__startswith=f"{source.live_version_id}:"
            )
        }
    delivered_at = timezone.now() - datetime.timedelta(hours=1)
    _delivered(tenant, messages.values(), delivered_at)
    return source, follower, messages, delivered_at


def test_fires_once_for_who_did_not_open_and_never_for_who_opened(tenant_a, people, ready):
    reader, clicker, ignorer, machine_only, late_reader = (patient(tenant_a) for _ in range(5))
    contacts = [reader, clicker, ignorer, machine_only, late_reader]
    _source, follower, messages, delivered_at = _mailed(tenant_a, people, ready, contacts)
    _open(tenant_a, messages[reader.pk], delivered_at + datetime.timedelta(hours=5))
    _click(tenant_a, messages[clicker.pk], delivered_at + datetime.timedelta(days=1))
    # Machines: Apple Mail Privacy Protection's proxy, a security scanner.
    _open(tenant_a, messages[machine_only.pk], delivered_at + datetime.timedelta(minutes=10), ip="17.58.1.2")
    _open(
        tenant_a,
        messages[machine_only.pk],
        delivered_at + datetime.timedelta(minutes=11),
        user_agent="Mozilla/5.0 (compatible; Barracuda Sentinel)",
    )
    _open(tenant_a, messages[late_reader.pk], delivered_at + datetime.timedelta(days=DAYS, hours=1))

    early = unopened.unopened_enrol(
        tenant=tenant_a, journey=follower, now=delivered_at + datetime.timedelta(days=2)
    )
    assert early == (0, 0)  # nobody's three days are over
    assert _inside(tenant_a, follower) == {}

    due = delivered_at + datetime.timedelta(days=DAYS, hours=2)
    assert unopened.unopened_enrol(tenant=tenant_a, journey=follower, now=due) == (5, 3)
    # An open after the three days does not undo the miss; the machine's opens were no opens.
    assert _inside(tenant_a, follower) == {ignorer.pk: 1, machine_only.pk: 1, late_reader.pk: 1}

    # They go through the journey and leave (re-entry "after_exit" would let them in again) ...
    later = due + datetime.timedelta(minutes=1)
    while engine.positions_advance(tenant=tenant_a, now=later).advanced:
        pass
    with tenant_context(tenant_a):
        assert set(Position.objects.filter(journey=follower).values_list("state", flat=True)) == {"exited"}
    # ... and later runs read nothing more: each delivery is looked at once.
    for days in (4, 10):
        again = unopened.unopened_enrol(
            tenant=tenant_a, journey=follower, now=delivered_at + datetime.timedelta(days=days)
        )
        assert again == (0, 0)
    assert _inside(tenant_a, follower) == {ignorer.pk: 1, machine_only.pk: 1, late_reader.pk: 1}


def test_the_send_step_still_asks_the_gate(tenant_a, people, ready):
    """Entering sends nothing by itself: a contact whose consent was revoked after the first email
    enters, and the journey's email is refused at its send step."""
    keeps, revokes = patient(tenant_a), patient(tenant_a)
    _source, follower, _messages, delivered_at = _mailed(tenant_a, people, ready, [keeps, revokes])
    topic = consent.topic_by_key(tenant=tenant_a, key="marketing_newsletters")
    consent.consent_revoke(tenant=tenant_a, contact=revokes, topic=topic, evidence=evidence())

    due = delivered_at + datetime.timedelta(days=DAYS, hours=1)
    assert unopened.unopened_enrol(tenant=tenant_a, journey=follower, now=due) == (2, 2)
    while engine.positions_advance(tenant=tenant_a, now=due + datetime.timedelta(seconds=1)).advanced:
        pass

    assert _journey_messages(tenant_a, "Nudge", keeps) == 1
    assert _journey_messages(tenant_a, "Nudge", revokes) == 0
    with tenant_context(tenant_a):
        refused = list(
            StepLog.objects.filter(journey=follower, contact=revokes, step="nudge").values_list(
                "outcome", "detail"
            )
        )
    assert refused == [(StepLog.Outcome.REFUSED, "opt_in_revoked")]


def test_a_campaign_send_is_watched_too(tenant_a, people, ready):
    """The campaign's deliveries: a contact who clicked (a click is a read) stays out."""
    campaign_ready = {
        "domain": verified_domain(tenant_a, "news.clinic.example.org"),
        "template": campaign_template(tenant_a, people["marketer"].actor, name="Campaign news"),
        "segment": segment(tenant_a),
    }
    campaign = draft(tenant_a, people, campaign_ready)
    follower = _follower(tenant_a, people, ready, {"campaign_id": str(campaign.pk)})
    clicker, ignorer = patient(tenant_a), patient(tenant_a)
    messages = message_enqueue_many(
        tenant=tenant_a,
        stream="marketing",
        source_type="campaign",
        source_id=str(campaign.pk),
        purpose="marketing",
        topic="marketing_newsletters",
        uses_phi=False,
        recipients=[OutboxRecipient(c.pk, c.email) for c in (clicker, ignorer)],
    )
    delivered_at = timezone.now() - datetime.timedelta(minutes=30)
    _delivered(tenant_a, messages, delivered_at)
    _click(tenant_a, messages[0], delivered_at + datetime.timedelta(hours=2))

    due = delivered_at + datetime.timedelta(days=DAYS, minutes=1)
    assert unopened.unopened_enrol(tenant=tenant_a, journey=follower, now=due) == (2, 1)
    assert _inside(tenant_a, follower) == {ignorer.pk: 1}


def test_emails_whose_days_ended_before_activation_or_while_paused_enter_nobody(
    tenant_a, people, ready, monkeypatch
):
    before, paused, after = patient(tenant_a), patient(tenant_a), patient(tenant_a)
    _source, follower, messages, delivered_at = _mailed(tenant_a, people, ready, [before, paused, after])
    now = timezone.now()
    # Delivered long ago: its three days ended before the follower was activated.
    _delivered(tenant_a, [messages[before.pk]], now - datetime.timedelta(days=DAYS + 5))
    _delivered(tenant_a, [messages[paused.pk]], now - datetime.timedelta(days=DAYS, minutes=-30))
    marketer = people["marketer"]
    journey_services.journey_pause(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, journey=follower
    )
    # The paused journey reads nothing ...
    assert unopened.unopened_enrol(
        tenant=tenant_a, journey=follower, now=now + datetime.timedelta(hours=1)
    ) == (0, 0)
    # ... and resumed an hour later, the email whose days ended meanwhile enters nobody.
    with tenant_context(tenant_a):
        follower = Journey.objects.get(pk=follower.pk)
    monkeypatch.setattr(
        journey_services, "timezone", SimpleNamespace(now=lambda: now + datetime.timedelta(hours=1))
    )
    journey_services.journey_pause(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, journey=follower, resume=True
    )
    due = delivered_at + datetime.timedelta(days=DAYS, hours=1)
    assert unopened.unopened_enrol(tenant=tenant_a, journey=follower, now=due) == (1, 1)
    assert set(_inside(tenant_a, follower)) == {after.pk}


def test_other_organizations_sends_are_neither_chosen_nor_read(tenant_a, tenant_b, people, ready):
    source, follower, _messages, delivered_at = _mailed(tenant_a, people, ready, [patient(tenant_a)])
    # Tenant B cannot watch tenant A's journey or campaign: refused at save time, at the field.
    from tests.campaigns.conftest import person

    b_people = {
        "marketer": person(tenant_b, "marketer"),
        "compliance": person(tenant_b, "compliance_officer"),
    }
    for watched in ({"journey_id": str(source.pk), "step": "mail"}, {"campaign_id": str(source.pk)}):
        body = {
            "entry": {"kind": "engagement", "action": "not_opened", "days": DAYS, **watched},
            "start": "wait",
            "steps": {"wait": {"type": "wait", "seconds": 3600, "next": "done"}, **EXIT},
        }
        with pytest.raises(spec.DefinitionInvalid) as refused:
            activated(tenant_b, b_people, body)
        assert refused.value.extra["problems"][0]["where"] == "entry.send"
    # A tenant B message under the same source id (a collision) is not among tenant A's deliveries.
    outsider = patient(tenant_b)
    [foreign] = message_enqueue_many(
        tenant=tenant_b,
        stream="marketing",
        source_type="journey",
        source_id=f"{source.live_version_id}:mail",
        purpose="marketing",
        uses_phi=False,
        recipients=[OutboxRecipient(outsider.pk, outsider.email)],
    )
    _delivered(tenant_b, [foreign], delivered_at)
    due = delivered_at + datetime.timedelta(days=DAYS, hours=1)
    assert unopened.unopened_enrol(tenant=tenant_a, journey=follower, now=due) == (1, 1)
    assert outsider.pk not in _inside(tenant_a, follower)


def test_the_definition_names_one_send_and_sane_days():
    def problems(**entry):
        body = {
            "entry": {"kind": "engagement", "action": "not_opened", **entry},
            "start": "done",
            "steps": dict(EXIT),
        }
        return sorted(p.where for p in spec.problems_of(body))

    journey = {"journey_id": "0b6f3c9e-4a51-4c4f-9d8e-2f1a4b7c6d5e", "step": "mail"}
    campaign = {"campaign_id": "5d2b8a7c-1e3f-4a6b-8c9d-0e1f2a3b4c5d"}
    assert problems(days=7, **journey) == []
    assert problems(days=90, **campaign) == []
    for days in (0, 91, -1, True, "7", 2.5, None):
        assert problems(days=days, **campaign) == ["entry.days"], days
    assert problems(days=7) == ["entry.send"]  # neither
    assert problems(days=7, **journey, **campaign) == ["entry.send"]  # both
    assert problems(days=7, campaign_id="not-an-id") == ["entry.send"]
    assert problems(days=7, journey_id=journey["journey_id"], step="Bad Step") == ["entry.send"]
    assert problems(days=7, journey_id=journey["journey_id"]) == ["entry.send"]


def test_a_journey_send_must_be_a_send_step_of_that_journey(tenant_a, people, ready):
    source = _mail_journey(tenant_a, people, ready)
    for step in ("done", "nosuch"):
        with pytest.raises(spec.DefinitionInvalid) as refused:
            _follower(tenant_a, people, ready, {"journey_id": str(source.pk), "step": step})
        assert refused.value.extra["problems"][0]["where"] == "entry.send"


def test_the_sweep_gives_each_active_unopened_journey_a_worker(tenant_a, people, ready, monkeypatch):
    _source, follower, _messages, _at = _mailed(tenant_a, people, ready, [patient(tenant_a)])
    started = []
    monkeypatch.setattr(
        tasks.journeys_unopened_enrol, "apply_async", lambda **kw: started.append(kw["kwargs"])
    )
    monkeypatch.setattr(tasks.journeys_advance_due, "apply_async", lambda **kw: None)
    monkeypatch.setattr(tasks.journeys_segment_checks, "apply_async", lambda **kw: None)
    result = tasks.journeys_sweep()
    assert result["unopened_journeys"] == 1
    assert started == [{"tenant_id": str(tenant_a.pk), "journey_id": str(follower.pk)}]


def test_the_due_deliveries_are_read_from_the_partial_index(tenant_a, people, ready):
    _source, follower, _messages, delivered_at = _mailed(tenant_a, people, ready, [patient(tenant_a)])
    query = unopened._DUE.replace("/*after*/", unopened._AFTER_ROW)
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN " + query,
            {
                "tenant": tenant_a.pk,
                "type": "journey",
                "sources": ["x:mail"],
                "states": list(unopened.DELIVERED_STATES),
                "after": delivered_at,
                "after_id": follower.pk,
                "cut": delivered_at,
                "limit": 10,
            },
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "message_source_delivered" in plan, plan
