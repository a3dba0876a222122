"""The outbox as a queue: claims with SKIP LOCKED and leases, retries with backoff, ambiguous hand-offs
resent with the same Message-ID, expiry, the sweeper, and source cancel/pause/resume."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from consent.gate import may_send
from contacts.models import Contact
from delivery import tasks
from delivery.engine import record, services
from delivery.engine.claim import message_claim_batch, messages_claim
from delivery.engine.sweeper import LOST_HANDOFF, delivery_sweep
from delivery.engine.worker import drain
from delivery.inbound.classify import classify_status
from delivery.models import Message, MessageAttempt, Stream
from healthmail.tenants.context import tenant_context
from tests.factories import BaaFactory, TenantFactory

from .engine_support import dependencies as make_dependencies
from .engine_support import enqueue, reload, verified_sender_domain

State = Message.State
LEASE = timedelta(seconds=60)


@pytest.fixture
def sender(tenant_a):
    return verified_sender_domain(tenant_a)[0]


@pytest.fixture
def deps(kit, transport):
    return make_dependencies(kit, transport)


def _make_due(tenant, messages):
    with tenant_context(tenant):
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(not_before=timezone.now())


@pytest.mark.django_db
def test_claims_take_due_rows_of_the_tenant_once(tenant_a, tenant_b, sender):
    due = enqueue(tenant_a, [f"p{i}@good.test" for i in range(5)], sender_domain=sender)
    later = enqueue(
        tenant_a, ["later@good.test"], sender_domain=sender, not_before=timezone.now() + timedelta(hours=1)
    )
    held = enqueue(tenant_a, ["held@good.test"], sender_domain=sender, source_id="held-source")
    services.messages_pause_for_source(tenant=tenant_a, source_type="api", source_id="held-source")
    other = enqueue(
        tenant_b, ["b@good.test"], sender_domain=verified_sender_domain(tenant_b, "mail.b.test")[0]
    )

    first = message_claim_batch(
        tenant_id=tenant_a.pk, stream="transactional", worker="w1", limit=3, lease=LEASE
    )
    second = message_claim_batch(
        tenant_id=tenant_a.pk, stream="transactional", worker="w2", limit=10, lease=LEASE
    )
    marketing = message_claim_batch(
        tenant_id=tenant_a.pk, stream="marketing", worker="w3", limit=10, lease=LEASE
    )

    assert len(first) == 3
    assert len(second) == 2
    assert marketing == []
    assert set(first) | set(second) == {m.pk for m in due}
    claimed = reload(tenant_a, due)
    assert {m.claimed_by for m in claimed} == {"w1", "w2"}
    assert all(m.state == State.SENDING for m in claimed)
    assert all(m.lease_until > timezone.now() for m in claimed)
    assert reload(tenant_a, later + held)[0].state == State.QUEUED
    assert reload(tenant_b, other)[0].state == State.QUEUED  # another tenant's rows are invisible


def _in_thread(work):
    errors = []

    def run():
        try:
            work()
        except Exception as error:  # noqa: BLE001 - re-raised in the test thread
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


@pytest.mark.usefixtures("committed_db")
def test_a_second_worker_skips_rows_locked_by_a_claim_in_progress():
    slug = f"claim-{uuid.uuid4().hex[:10]}"
    tenant = TenantFactory(name=slug, slug=slug)
    BaaFactory(tenant=tenant)
    sender = verified_sender_domain(tenant, f"{slug}.test")[0]
    messages = enqueue(tenant, [f"p{i}@good.test" for i in range(10)], sender_domain=sender)
    locked, release = threading.Event(), threading.Event()
    first: list = []

    def slow_claim():
        with transaction.atomic():  # the claim stays uncommitted (rows locked) until released
            first.extend(
                message_claim_batch(
                    tenant_id=tenant.pk, stream="transactional", worker="a", limit=6, lease=LEASE
                )
            )
            locked.set()
            release.wait(timeout=30)

    thread, errors = _in_thread(slow_claim)
    assert locked.wait(timeout=30)
    second = message_claim_batch(
        tenant_id=tenant.pk, stream="transactional", worker="b", limit=10, lease=LEASE
    )
    release.set()
    thread.join(timeout=30)

    assert errors == []
    assert len(first) == 6
    assert len(second) == 4
    assert set(first).isdisjoint(second)
    assert set(first) | set(second) == {m.pk for m in messages}


@pytest.mark.django_db
def test_a_temporary_failure_is_retried_later_then_delivered(tenant_a, sender, kit, deps):
    (message,) = enqueue(tenant_a, ["p@tempfail.test"], sender_domain=sender)

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)

    (message,) = reload(tenant_a, [message])
    assert (message.state, message.attempts) == (State.DEFERRED, 1)
    assert message.state_reason.startswith("451")
    wait = message.not_before - timezone.now()
    assert timedelta(minutes=3) < wait <= timedelta(minutes=6)  # 5 min ± 20 % jitter
    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)  # not due yet: nothing happens
    assert reload(tenant_a, [message])[0].attempts == 1

    _make_due(tenant_a, [message])
    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)

    (message,) = reload(tenant_a, [message])
    assert (message.state, message.attempts) == (State.DELIVERED_TLS, 2)
    with tenant_context(tenant_a):
        outcomes = list(MessageAttempt.objects.filter(message=message).values_list("outcome", "smtp_code"))
    assert outcomes == [("deferred", 451), ("delivered", 250)]


@pytest.mark.django_db
def test_retries_give_up_after_the_maximum_age(tenant_a, sender, kit, transport):
    deps = make_dependencies(kit, transport)
    (message,) = enqueue(tenant_a, ["p@tempfail.test"], sender_domain=sender)
    with tenant_context(tenant_a):  # the first attempt was six days ago
        Message.objects.filter(pk=message.pk).update(first_attempt_at=timezone.now() - timedelta(days=6))

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.EXPIRED
    assert message.state_reason.startswith("gave up after 1 attempts")


@pytest.mark.django_db
def test_an_ambiguous_hand_off_is_counted_and_resent_with_the_same_message_id(tenant_a, sender, kit, deps):
    (message,) = enqueue(tenant_a, ["p@drop.test"], sender_domain=sender)

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)
    (message,) = reload(tenant_a, [message])
    assert (message.state, message.ambiguous_sends) == (State.DEFERRED, 1)
    _make_due(tenant_a, [message])
    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)

    (message,) = reload(tenant_a, [message])
    assert message.ambiguous_sends == 2
    assert message.attempts == 2
    ids = [m.content.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode() for m in kit["drop"].messages]
    assert ids == [message.message_id, message.message_id]  # the server may hold both: same id, counted


@pytest.mark.django_db
def test_expired_messages_are_not_sent(tenant_a, sender, kit, deps):
    (message,) = enqueue(
        tenant_a, ["p@good.test"], sender_domain=sender, expires_at=timezone.now() - timedelta(seconds=1)
    )

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)

    assert reload(tenant_a, [message])[0].state == State.EXPIRED
    assert kit["good"].messages == []


@pytest.mark.django_db
def test_the_sweeper_requeues_dead_claims_and_counts_hand_offs_as_ambiguous(tenant_a, sender, kit, deps):
    never_started, handed_off, live = enqueue(
        tenant_a, ["a@good.test", "b@good.test", "c@good.test"], sender_domain=sender
    )
    stale = enqueue(
        tenant_a, ["d@good.test"], sender_domain=sender, expires_at=timezone.now() + timedelta(seconds=30)
    )
    now = timezone.now()
    with tenant_context(tenant_a):
        Message.objects.filter(pk__in=[never_started.pk, handed_off.pk]).update(
            state=State.SENDING, claimed_by="dead", lease_until=now - timedelta(seconds=1)
        )
        Message.objects.filter(pk=handed_off.pk).update(handoff_at=now - timedelta(seconds=30))
        Message.objects.filter(pk=live.pk).update(
            state=State.SENDING, claimed_by="alive", lease_until=now + timedelta(minutes=1)
        )
    woken = []

    report = delivery_sweep(
        now=now + timedelta(minutes=1) - timedelta(seconds=1), wake=lambda **kw: woken.append(kw)
    )

    never_started, handed_off, live, stale = reload(tenant_a, [never_started, handed_off, live, *stale])
    assert (never_started.state, never_started.ambiguous_sends, never_started.claimed_by) == (
        State.QUEUED,
        0,
        "",
    )
    assert (handed_off.state, handed_off.ambiguous_sends, handed_off.state_reason) == (
        State.QUEUED,
        1,
        LOST_HANDOFF,
    )
    assert live.state == State.SENDING  # its lease still runs
    assert stale.state == State.EXPIRED
    assert (report.requeued, report.ambiguous, report.expired) == (2, 1, 1)
    assert woken == [{"tenant_id": tenant_a.pk, "stream": "transactional"}]
    with tenant_context(tenant_a):
        assert list(MessageAttempt.objects.filter(message=handed_off).values_list("outcome", flat=True)) == [
            "ambiguous"
        ]

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)
    assert {m.state for m in reload(tenant_a, [never_started, handed_off])} == {State.DELIVERED_TLS}


@pytest.mark.django_db
def test_the_claim_returns_its_rows_as_they_are_after_it(tenant_a, sender):
    """The drain sends from the rows the claim returned (no second read): they must be the stored rows,
    after the claim, every field as a read would give it (the address decrypts)."""
    due = enqueue(tenant_a, [f"r{i}@good.test" for i in range(3)], sender_domain=sender)
    claimed = messages_claim(
        tenant_id=tenant_a.pk, stream="transactional", worker="w1", limit=10, lease=LEASE
    )

    assert sorted(m.pk for m in claimed) == sorted(m.pk for m in due)
    stored = {m.pk: m for m in reload(tenant_a, due)}
    fields = [f.attname for f in Message._meta.concrete_fields]
    for message in claimed:
        assert message.state == State.SENDING
        assert message.claimed_by == "w1"
        assert message.lease_until is not None
        assert message.handoff_at is None
        assert {f: getattr(message, f) for f in fields} == {f: getattr(stored[message.pk], f) for f in fields}
        # Made without Model.__init__ (claim._Rows): loaded from the database, as from_db marks it.
        assert (message._state.adding, message._state.db) == (False, "default")
        assert isinstance(message.evidence, dict)
    assert sorted(m.to_address for m in claimed) == sorted(m.to_address for m in due)
    with tenant_context(tenant_a):  # an instance the ORM can write back, as one it loaded itself
        claimed[0].state_reason = "checked"
        claimed[0].save(update_fields=["state_reason"])
    assert reload(tenant_a, [claimed[0]])[0].state_reason == "checked"


@pytest.mark.django_db
def test_the_claim_still_sends_the_init_signals_when_someone_listens(tenant_a, sender):
    """The claim skips Model.__init__ only while nothing listens to the outbox's init signals."""
    from django.db.models.signals import post_init

    enqueue(tenant_a, [f"s{i}@good.test" for i in range(2)], sender_domain=sender)
    seen = []

    def listen(sender, instance, **kwargs):
        seen.append(instance.pk)

    post_init.connect(listen, sender=Message)
    try:
        claimed = messages_claim(
            tenant_id=tenant_a.pk, stream="transactional", worker="w1", limit=10, lease=LEASE
        )
    finally:
        post_init.disconnect(listen, sender=Message)
    assert len(claimed) == 2
    assert sorted(seen) == sorted(m.pk for m in claimed)
    assert {m.state for m in claimed} == {State.SENDING}


@pytest.mark.django_db
def test_a_worker_whose_lease_was_taken_back_does_not_send(tenant_a, sender, kit, deps):
    (message,) = enqueue(tenant_a, ["p@good.test"], sender_domain=sender)
    claimed = messages_claim(
        tenant_id=tenant_a.pk, stream="transactional", worker="slow", limit=5, lease=LEASE
    )
    assert [m.pk for m in claimed] == [message.pk]
    with tenant_context(tenant_a):  # the sweeper gave it to someone else meanwhile
        Message.objects.filter(pk=message.pk).update(claimed_by="someone-else")

    from delivery.engine.send import send_claimed

    # The rows as the claim returned them (still naming "slow"): the hand-off mark decides.
    send_claimed(tenant_id=tenant_a.pk, stream="transactional", worker="slow", messages=claimed, deps=deps)

    assert kit["good"].messages == []
    assert reload(tenant_a, [message])[0].claimed_by == "someone-else"


@pytest.mark.django_db
def test_cancel_pause_and_resume_a_source(tenant_a, sender, kit, deps):
    kept = enqueue(tenant_a, ["k@good.test"], sender_domain=sender, source_id="keep")
    paused = enqueue(tenant_a, ["p1@good.test", "p2@good.test"], sender_domain=sender, source_id="pause")
    cancelled = enqueue(tenant_a, ["c1@good.test", "c2@good.test"], sender_domain=sender, source_id="cancel")

    assert services.messages_pause_for_source(tenant=tenant_a, source_type="api", source_id="pause") == 2
    assert services.messages_cancel_for_source(tenant=tenant_a, source_type="api", source_id="cancel") == 2
    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)

    assert [m.state for m in reload(tenant_a, kept + paused + cancelled)] == [
        State.DELIVERED_TLS, State.QUEUED, State.QUEUED, State.CANCELLED, State.CANCELLED,
    ]  # fmt: skip
    assert services.messages_resume_for_source(tenant=tenant_a, source_type="api", source_id="pause") == 2
    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)
    assert {m.state for m in reload(tenant_a, paused)} == {State.DELIVERED_TLS}
    assert len(kit["good"].messages) == 3


@pytest.mark.django_db
def test_resume_wakes_the_sources_stream_once_committed(
    tenant_a, sender, monkeypatch, django_capture_on_commit_callbacks
):
    enqueue(tenant_a, ["r1@good.test", "r2@good.test"], sender_domain=sender, source_id="wake")
    assert services.messages_pause_for_source(tenant=tenant_a, source_type="api", source_id="wake") == 2
    woken: list[dict[str, object]] = []
    monkeypatch.setattr(tasks, "wake", lambda **kwargs: woken.append(kwargs))

    with django_capture_on_commit_callbacks(execute=True):
        assert services.messages_resume_for_source(tenant=tenant_a, source_type="api", source_id="wake") == 2
        assert woken == []  # not before the rows are released
    assert woken == [{"tenant_id": tenant_a.pk, "stream": Stream.TRANSACTIONAL}]


@pytest.mark.django_db
def test_a_hard_bounce_replayed_from_the_journal_suppresses_its_recipient(tenant_a, sender):
    (message,) = enqueue(tenant_a, ["gone@good.test"], sender_domain=sender)
    message.attempts = 1
    reply = "550 5.1.1 no such user"
    settle = record.Settle(message, State.BOUNCED, reply, verdict=classify_status(text=reply))
    # What the journal keeps and a replay reads back: JSON, the verdict's category as its text.
    document = {
        "tenant_id": str(tenant_a.pk),
        "worker": "w",
        "rows": record.settle_rows([settle]),
        "attempts": [],
    }
    record.journal_record(json.loads(json.dumps(document, default=str)))

    (message,) = reload(tenant_a, [message])
    assert message.state == State.BOUNCED
    with tenant_context(tenant_a):
        contact = Contact.objects.get(pk=message.contact_id)
    assert may_send(contact=contact, purpose="treatment", uses_phi=True).code == "suppressed_hard_bounce"


@pytest.mark.django_db
def test_a_message_to_an_undeliverable_domain_fails_at_once_without_any_lookup(tenant_a, sender, kit, deps):
    # Intake refuses these addresses (contacts/addresses.py); the engine keeps the same rule for rows
    # enqueued before it, and fails them for good instead of deferring them through DNS retries.
    messages = enqueue(tenant_a, ["p@localhost", "p@good.test"], sender_domain=sender, contacts=False)

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)

    refused, sent = reload(tenant_a, messages)
    assert (refused.state, refused.attempts) == (State.FAILED, 0)
    assert (
        refused.state_reason
        == "the address has a domain without a dot, which cannot receive mail from the internet"
    )
    assert sent.state == State.DELIVERED_TLS
    assert [m.rcpt_tos for m in kit["good"].messages] == [["p@good.test"]]
