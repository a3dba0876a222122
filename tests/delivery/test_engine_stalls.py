"""A stalled receiver delays only its own message (issue 24): the round records the other outcomes and
the drain claims its next batch at once, while the stalled message waits alone for the reply to its
final "." (its claim kept by the stall keeper's heartbeat, swept all along) and is recorded, once,
when the receiver accepts it. A real aiosmtpd receiver silent for STALL seconds after one message's
final "."."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from delivery.engine.stalls import KEEPER, stalls_wait
from delivery.engine.sweeper import delivery_sweep
from delivery.engine.worker import drain
from delivery.models import Message, MessageAttempt, Stream
from healthmail.tenants.context import tenant_context
from tests.factories import BaaFactory, TenantFactory

from .engine_support import dependencies, enqueue, reload, verified_sender_domain

pytestmark = pytest.mark.usefixtures("committed_db")
State = Message.State
STALL = 4.0  # the receiver's silence before it answers the stalled message's final "."
GRACE = 1.0


@pytest.fixture
def tenant(settings, tmp_path):
    settings.DELIVERY_HEARTBEAT_GRACE_SECONDS = GRACE
    settings.DELIVERY_JOURNAL_DIR = str(tmp_path / "journal")
    slug = f"stall-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Stall {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


def _message_ids(server) -> list[str]:
    return [m.content.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode() for m in server.messages]


def test_a_stalled_message_holds_neither_its_round_nor_the_next_claim_and_is_delivered_once(
    tenant, kit, transport
):
    sender, _ = verified_sender_domain(tenant)
    (stalled,) = enqueue(tenant, ["stalled@slow.test"], sender_domain=sender)  # claimed first
    others = enqueue(tenant, [f"p{i}@slow.test" for i in range(5)], sender_domain=sender)
    kit["slow"].behaviour.stall, kit["slow"].behaviour.stall_only = {"end": STALL}, "stalled"
    deps = dependencies(
        kit,
        replace(transport, stall_after=0.3, timeouts=replace(transport.timeouts, data_end=STALL * 5)),
        claim_batch=2,  # three batches: the stalled message's round has one other message
        lease=timedelta(seconds=1),  # far shorter than the stall: only the heartbeat keeps the claim
        heartbeat=0.2,
        heartbeat_grace=GRACE,
    )

    began = time.monotonic()
    report = drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=deps)
    drained = time.monotonic() - began

    # The drain sent and recorded every other message, its later batches included, and returned
    # while the receiver was still silent about the stalled one.
    assert drained < STALL - 1, drained
    assert (report.claimed, report.stalled) == (6, 1)
    assert sorted(_message_ids(kit["slow"])) == sorted(m.message_id for m in others)
    assert {m.state for m in reload(tenant, others)} == {State.DELIVERED_TLS}
    (waiting,) = reload(tenant, [stalled])
    assert (waiting.state, waiting.handoff_at is not None) == (State.SENDING, True)

    # Its claim outlives the lease and the drain: swept every 0.2 s, never taken back.
    taken_back = 0
    while KEEPER.waiting():
        taken_back += delivery_sweep(tenant_ids=[tenant.pk], wake=lambda **kw: None).requeued
        time.sleep(0.2)
    assert stalls_wait(10)
    assert taken_back == 0

    (stalled,) = reload(tenant, [stalled])
    assert (stalled.state, stalled.ambiguous_sends, stalled.attempts) == (State.DELIVERED_TLS, 0, 1)
    assert _message_ids(kit["slow"]).count(stalled.message_id) == 1  # accepted once, never resent
    with tenant_context(tenant):
        attempts = {a.message_id: a for a in MessageAttempt.objects.filter(message__tenant=tenant)}
    assert len(attempts) == 6
    alone = attempts[stalled.pk]
    assert (alone.outcome, alone.smtp_code) == ("delivered", 250)
    later = [a for key, a in attempts.items() if key != stalled.pk and a.started_at > alone.started_at]
    assert later  # a batch claimed after the stalled message's was sent while it waited
    recorded = [m.updated_at for m in reload(tenant, others)]
    assert max(recorded) < alone.finished_at - timedelta(seconds=STALL / 2)  # recorded before it ended


def test_a_stalled_message_whose_reply_never_comes_is_the_only_ambiguous_one(tenant, kit, transport):
    sender, _ = verified_sender_domain(tenant)
    stalled, other = enqueue(tenant, ["stalled@slow.test", "p@slow.test"], sender_domain=sender)
    kit["slow"].behaviour.stall, kit["slow"].behaviour.stall_only = {"end": STALL}, "stalled"
    deps = dependencies(
        kit,
        replace(transport, stall_after=0.3, timeouts=replace(transport.timeouts, data_end=1.0)),
        heartbeat=0.2,
        heartbeat_grace=GRACE,
    )

    report = drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=deps)
    assert stalls_wait(10)

    stalled, other = reload(tenant, [stalled, other])
    assert report.stalled == 1
    assert other.state == State.DELIVERED_TLS
    # Its wait timed out after the final ".": resent later with the same Message-ID, and counted.
    assert (stalled.state, stalled.ambiguous_sends, stalled.attempts) == (State.DEFERRED, 1, 1)


def test_a_worker_process_shutting_down_waits_for_its_stalled_message_and_records_it_once(
    tenant, kit, transport
):
    """A warm shutdown (or max-tasks-per-child) while a message waits for the reply to its final ".":
    the process first lets the wait end and records the acceptance (delivery/tasks.py,
    stalled_messages_finish), and only then closes its sessions, which would cancel the wait and leave
    a message the receiver accepted to be resent as ambiguous."""
    from celery import signals

    import delivery.tasks  # connects the worker_process_shutdown receiver

    assert delivery.tasks.stalled_messages_finish
    sender, _ = verified_sender_domain(tenant)
    stalled, other = enqueue(tenant, ["stalled@slow.test", "p@slow.test"], sender_domain=sender)
    kit["slow"].behaviour.stall, kit["slow"].behaviour.stall_only = {"end": STALL}, "stalled"
    deps = dependencies(
        kit,
        replace(transport, stall_after=0.3, timeouts=replace(transport.timeouts, data_end=STALL * 5)),
        heartbeat=0.2,
        heartbeat_grace=GRACE,
    )
    report = drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=deps)
    assert (report.stalled, KEEPER.waiting()) == (1, 1)

    began = time.monotonic()
    signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)  # as a pool process
    waited = time.monotonic() - began

    assert stalls_wait(10)  # whatever the keeper still had to record (nothing, when the wait ran first)
    stalled, other = reload(tenant, [stalled, other])
    assert other.state == State.DELIVERED_TLS
    assert (stalled.state, stalled.ambiguous_sends, stalled.attempts) == (State.DELIVERED_TLS, 0, 1), waited
    assert _message_ids(kit["slow"]).count(stalled.message_id) == 1
    assert waited > 1.0  # it waited for the receiver (silent STALL seconds from the final ".")
