"""Log lines at the decisions operators act on (suppressions, alerts, disposal, the delivery engine's
claims and retries), each naming the object by id with its counts and codes, never the person (no
address, no name, no alert summary, no SMTP reply)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit import alerts, chain
from audit import services as audit
from consent.suppressions import suppression_add, suppression_remove
from delivery.engine.claim import messages_claim
from delivery.engine.sweeper import delivery_sweep
from delivery.engine.worker import drain
from delivery.models import Message, Stream
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from retention import disposal
from retention.models import DisposalRun
from tests.delivery.engine_support import dependencies, enqueue, reload, verified_sender_domain
from tests.retention.helpers import YEAR, new_contact, new_messages, officer

from .conftest import json_lines

pytestmark = pytest.mark.django_db

ADDRESS = "operator.log.patient@example.org"


def _named(stream, message: str) -> list[dict]:
    return [line for line in json_lines(stream) if line["message"] == message]


def test_suppressions_are_logged_by_id_and_reason_without_the_address(json_log, tenant_a):
    actor = Actor.system("test")
    entry = suppression_add(tenant=tenant_a, actor=actor, reason="manual", email=ADDRESS)
    suppression_remove(tenant=tenant_a, actor=actor, suppression=entry, reason="added in error")
    [added] = _named(json_log, "consent: suppression added")
    [removed] = _named(json_log, "consent: suppression removed")
    assert (added["suppression"], added["reason"], added["by"]) == (str(entry.pk), "manual", "system")
    assert added["tenant_id"] == str(tenant_a.pk)
    assert removed["suppression"] == str(entry.pk)
    assert ADDRESS not in json_log.getvalue()
    assert "operator.log.patient" not in json_log.getvalue()


def test_alerts_are_logged_by_rule_and_severity_without_their_summary(
    json_log, tenant_a, django_capture_on_commit_callbacks
):
    for _ in range(10):
        audit.record(actor=Actor("user", "someone"), action="auth.login", outcome="denied", tenant=tenant_a)
    chain.seal_all()
    with django_capture_on_commit_callbacks(execute=True):
        fired = alerts.alerts_scan_tenant(tenant_a)
    lines = _named(json_log, "audit: alert raised")
    assert sorted(line["alert"] for line in lines) == sorted(str(alert.pk) for alert in fired)
    assert {line["rule"] for line in lines} >= {"failed_sign_ins"}
    assert {line["tenant_id"] for line in lines} == {str(tenant_a.pk)}
    for alert in fired:
        assert alert.summary not in json_log.getvalue()


def test_disposal_batches_and_completion_are_logged_with_the_database_counts(json_log, tenant_a, monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, *, tenant, **ids: None)
    contact = new_contact(tenant_a)
    new_messages(tenant_a, 3, age=8 * YEAR, contact=contact)
    actor = officer(tenant_a)
    (run,) = [r for r in disposal.disposal_plan(tenant=tenant_a, actor=actor) if r.requires_approval]
    disposal.disposal_approve(tenant=tenant_a, actor=officer(tenant_a), run=run)
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)
    with tenant_context(tenant_a):
        run.refresh_from_db()
    assert run.status == DisposalRun.Status.COMPLETED
    batches = _named(json_log, "retention: disposal batch")
    [complete] = _named(json_log, "retention: disposal complete")
    assert len(batches) == run.batches_done
    assert (complete["run"], complete["destroyed"]) == (str(run.pk), run.destroyed_count)
    assert complete["tenant_id"] == str(tenant_a.pk)
    assert run.destroyed_count >= 3
    assert contact.email not in json_log.getvalue()


def test_claims_are_logged_once_per_batch_with_the_count_the_update_returned(json_log, tenant_a):
    sender, _ = verified_sender_domain(tenant_a)
    addresses = [f"claim{n}.log.patient@good.test" for n in range(3)]
    enqueue(tenant_a, addresses, sender_domain=sender)
    lease = timedelta(seconds=60)
    first = messages_claim(  # the drain's claim (claim.py's message_claim_batch logs alike)
        tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, worker="w1", limit=2, lease=lease
    )
    rest = messages_claim(
        tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, worker="w2", limit=5, lease=lease
    )
    none = messages_claim(
        tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, worker="w3", limit=5, lease=lease
    )
    assert (len(first), len(rest), none) == (2, 1, [])
    lines = _named(json_log, "delivery: claimed")
    assert [(line["worker"], line["claimed"], line["limit"]) for line in lines] == [
        ("w1", 2, 2),
        ("w2", 1, 5),
    ]
    assert {(line["tenant_id"], line["stream"]) for line in lines} == {(str(tenant_a.pk), "transactional")}
    assert "log.patient" not in json_log.getvalue()


def test_claims_taken_back_from_dead_workers_are_logged_with_the_database_counts(json_log, tenant_a):
    sender, _ = verified_sender_domain(tenant_a)
    never_started, handed_off, live = enqueue(
        tenant_a, [f"dead{n}.log.patient@good.test" for n in range(3)], sender_domain=sender
    )
    now = timezone.now()
    with tenant_context(tenant_a):
        Message.objects.filter(pk__in=[never_started.pk, handed_off.pk]).update(
            state=Message.State.SENDING, claimed_by="dead", lease_until=now - timedelta(seconds=1)
        )
        Message.objects.filter(pk=handed_off.pk).update(handoff_at=now - timedelta(seconds=30))
        Message.objects.filter(pk=live.pk).update(
            state=Message.State.SENDING, claimed_by="alive", lease_until=now + timedelta(minutes=5)
        )

    report = delivery_sweep(now=now, wake=lambda **kw: None, tenant_ids=[tenant_a.pk])

    [line] = _named(json_log, "delivery: claims taken back")
    assert (line["reclaimed"], line["ambiguous"]) == (report.requeued, report.ambiguous) == (2, 1)
    assert line["tenant_id"] == str(tenant_a.pk)
    assert "log.patient" not in json_log.getvalue()


def test_a_deferral_is_logged_with_its_attempt_next_try_and_reply_class_without_the_reply(
    json_log, tenant_a, kit, transport
):
    sender, _ = verified_sender_domain(tenant_a)
    (message,) = enqueue(tenant_a, ["retry.log.patient@tempfail.test"], sender_domain=sender)

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))

    (message,) = reload(tenant_a, [message])
    assert message.state == Message.State.DEFERRED
    [line] = _named(json_log, "delivery: deferred")
    assert (line["message_id"], line["attempt"], line["smtp_class"]) == (str(message.pk), 1, "4xx")
    assert line["next_try"] == message.not_before.isoformat()
    assert line["tenant_id"] == str(tenant_a.pk)
    assert "log.patient" not in json_log.getvalue()
    assert message.state_reason not in json_log.getvalue()  # the server's reply text stays out


def test_retries_given_up_are_logged_as_expired_with_the_attempt_count(json_log, tenant_a, kit, transport):
    sender, _ = verified_sender_domain(tenant_a)
    (message,) = enqueue(tenant_a, ["gaveup.log.patient@tempfail.test"], sender_domain=sender)
    with tenant_context(tenant_a):  # the first attempt was six days ago: the schedule gives up
        Message.objects.filter(pk=message.pk).update(first_attempt_at=timezone.now() - timedelta(days=6))

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))

    assert reload(tenant_a, [message])[0].state == Message.State.EXPIRED
    [line] = _named(json_log, "delivery: expired")
    assert (line["message_id"], line["attempt"], line["next_try"], line["smtp_class"]) == (
        str(message.pk),
        1,
        None,
        "4xx",
    )
    assert line["level"] == "WARNING"
    assert "log.patient" not in json_log.getvalue()
