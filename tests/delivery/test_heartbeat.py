"""Claims held by a live worker stay its own past their lease while it beats (a 10-minute wait for the
reply to the final "." resends nothing), and a holder that stops beating loses them after the grace,
seen twice; a database outage longer than the grace, which silences every holder, kills none."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from delivery.engine.claim import message_claim_batch
from delivery.engine.heartbeat import Heartbeat
from delivery.engine.sweeper import delivery_sweep
from delivery.engine.worker import drain
from delivery.models import Message, Stream
from healthmail.tenants.context import tenant_context
from tests.factories import BaaFactory, TenantFactory
from tests.outages.support import database_unreachable

from .engine_support import dependencies, enqueue, reload, verified_sender_domain

pytestmark = pytest.mark.usefixtures("committed_db")
State = Message.State
GRACE = 1.0


@pytest.fixture
def tenant(settings, tmp_path):
    settings.DELIVERY_HEARTBEAT_GRACE_SECONDS = GRACE
    settings.DELIVERY_JOURNAL_DIR = str(tmp_path / "journal")
    slug = f"beat-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Beat {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


def _sweep(tenant):
    return delivery_sweep(tenant_ids=[tenant.pk], wake=lambda **kw: None)


def _claimed_and_handed_off(tenant, sender, addresses: list[str], worker: str) -> list[Message]:
    messages = enqueue(tenant, addresses, sender_domain=sender)
    message_claim_batch(
        tenant_id=tenant.pk,
        stream=Stream.TRANSACTIONAL,
        worker=worker,
        limit=len(addresses),
        lease=timedelta(hours=1),
    )
    with tenant_context(tenant):
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(handoff_at=timezone.now())
    return messages


def _received(server) -> list[bytes]:
    return [m.content.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0] for m in server.messages]


def test_a_slow_final_reply_outlasting_the_lease_is_neither_taken_back_nor_resent(tenant, kit, transport):
    """The receiver answers the final "." after 3 s; the lease is 1 s; the sweeper runs every 0.2 s.
    The worker's heartbeat keeps the claim: delivered once, not ambiguous."""
    sender, _ = verified_sender_domain(tenant)
    (message,) = enqueue(tenant, ["p@slow.test"], sender_domain=sender)
    kit["slow"].behaviour.stall = {"end": 3.0}
    deps = dependencies(
        kit,
        replace(transport, timeouts=replace(transport.timeouts, data_end=30)),
        lease=timedelta(seconds=1),
        heartbeat=0.2,
        heartbeat_grace=GRACE,
    )
    done = threading.Event()

    def work():
        try:
            drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=deps)
        finally:
            connection.close()
            done.set()

    threading.Thread(target=work, daemon=True).start()
    taken_back = 0
    while not done.wait(0.2):
        taken_back += delivery_sweep(tenant_ids=[tenant.pk], wake=lambda **kw: None).requeued

    (message,) = reload(tenant, [message])
    assert taken_back == 0
    assert (message.state, message.ambiguous_sends) == (State.DELIVERED_TLS, 0)
    assert _received(kit["slow"]) == [message.message_id.encode()]


def test_a_holder_that_stops_beating_loses_its_claims_long_before_the_lease(tenant, kit):
    sender, _ = verified_sender_domain(tenant)
    handed, unsent = enqueue(tenant, ["a@good.test", "b@good.test"], sender_domain=sender)
    worker = f"doomed-{uuid.uuid4().hex[:6]}"
    heartbeat = Heartbeat(worker, interval=0.2)
    heartbeat.start()
    message_claim_batch(
        tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, worker=worker, limit=2, lease=timedelta(hours=1)
    )
    with tenant_context(tenant):
        Message.objects.filter(pk=handed.pk).update(handoff_at=timezone.now())

    time.sleep(GRACE + 0.5)  # beating: the claims are its own
    assert delivery_sweep(tenant_ids=[tenant.pk], wake=lambda **kw: None).requeued == 0

    heartbeat.stop()  # as after kill -9: no more beats (tests/outages/test_worker_kill.py kills one)
    time.sleep(GRACE + 0.5)
    assert _sweep(tenant).requeued == 0  # silent for the grace: suspected, not yet judged
    time.sleep(GRACE + 0.2)
    report = _sweep(tenant)  # still silent a grace after the first sighting: dead

    handed, unsent = reload(tenant, [handed, unsent])
    assert (report.requeued, report.ambiguous) == (2, 1)
    assert (handed.state, handed.ambiguous_sends) == (State.QUEUED, 1)  # it may have reached the server
    assert (unsent.state, unsent.ambiguous_sends) == (State.QUEUED, 0)


def test_a_database_outage_longer_than_the_grace_makes_no_live_holder_dead(tenant):
    """Every connection of this process (the holders' heartbeats and the sweeper alike) is cut, and new
    ones refused, for three graces: a wide outage without a server restart (a partition, a failover).
    The sweep right after the return finds both holders silent far past the grace; the live one has
    not had its second yet. It keeps its claims; the one that died during the outage loses them."""
    sender, _ = verified_sender_domain(tenant)
    live, dead = f"live-{uuid.uuid4().hex[:6]}", f"dead-{uuid.uuid4().hex[:6]}"
    beating, dying = Heartbeat(live, interval=1.0), Heartbeat(dead, interval=1.0)
    beating.start()
    dying.start()
    kept = _claimed_and_handed_off(tenant, sender, ["a@good.test", "b@good.test"], live)
    lost = _claimed_and_handed_off(tenant, sender, ["c@good.test"], dead)
    with connection.cursor() as cursor:  # the heartbeat threads' open sessions go too
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE '%%delivery_workerheartbeat%%'"
            " AND pid <> pg_backend_pid()"
        )
    with database_unreachable():
        dying.stop()  # dies while the database is away
        time.sleep(3 * GRACE)
    returned = _sweep(tenant)  # at once: the live holder's retry (each second) has not beaten yet
    time.sleep(GRACE + 0.5)
    judged = _sweep(tenant)
    beating.stop()

    assert (returned.requeued, judged.requeued, judged.ambiguous) == (0, 1, 1)
    kept, lost = reload(tenant, kept), reload(tenant, lost)
    assert {(m.state, m.claimed_by) for m in kept} == {(State.SENDING, live)}
    assert [(m.state, m.ambiguous_sends) for m in lost] == [(State.QUEUED, 1)]
