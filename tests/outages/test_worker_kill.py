"""kill -9 of a real delivery worker while it waits for receivers' replies: its heartbeat stops, and its
claims are taken back once the grace has passed (seconds), while their 5-minute leases still run.
Another worker then sends them, with the same Message-IDs, counted as ambiguous (RFC 1047: the dead
worker had handed them to SMTP)."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
from django.utils import timezone

from delivery.engine.sweeper import delivery_sweep
from delivery.models import DomainTlsPolicy, Message
from healthmail.tenants.context import tenant_context
from tests.delivery.engine_support import enqueue, verified_sender_domain
from tests.delivery.sink import CeleryWorkers, SinkProcess
from tests.factories import BaaFactory, TenantFactory

from .real_workers import owner_database_url, waker, worker_environment
from .support import PrivateRedis

pytestmark = pytest.mark.usefixtures("committed_db")
State = Message.State
DOMAIN = "kill.test"
GRACE = 2.0
TUNABLES = {
    "DELIVERY_HEARTBEAT_SECONDS": "0.5",
    "DELIVERY_HEARTBEAT_GRACE_SECONDS": str(GRACE),
    "DELIVERY_LEASE_SECONDS": "300",
    "DELIVERY_DRAIN_SECONDS": "3",
    "DELIVERY_SMTP_TIMEOUT_DATA_END": "120",
}


def _rows(tenant) -> list[Message]:
    with tenant_context(tenant):
        return list(Message.objects.all())


def _wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (found := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return found


def test_a_killed_workers_claims_move_on_within_seconds(tmp_path, settings):
    settings.DELIVERY_HEARTBEAT_GRACE_SECONDS = GRACE
    settings.DELIVERY_JOURNAL_DIR = journal = str(tmp_path / "journal")
    slug = f"kill-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Kill {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    sender, _ = verified_sender_domain(tenant)
    broker = PrivateRedis()
    for name in ("stalling", "prompt"):
        (tmp_path / name).mkdir()
    stalling = SinkProcess(tmp_path / "stalling", delay=60)  # silent after the final "." for a minute
    prompt = SinkProcess(tmp_path / "prompt")
    wake = waker(broker.url)
    workers = []
    try:
        first = CeleryWorkers(
            worker_environment(stalling, domain=DOMAIN, broker_url=broker.url, journal=journal, **TUNABLES),
            database_url=owner_database_url(),
            queues="transactional",
            concurrency=1,
        )
        workers.append(first)
        messages = enqueue(tenant, [f"p{i}@{DOMAIN}" for i in range(4)], sender_domain=sender)
        first.start()
        wake(tenant_id=tenant.pk, stream="transactional")
        handed = _wait(
            lambda: [m for m in _rows(tenant) if m.state == State.SENDING and m.handoff_at] or None,
            90,
            "the worker never handed the messages to SMTP",
        )
        lease_ends = min(m.lease_until for m in handed)

        os.killpg(first.processes[0].pid, signal.SIGKILL)
        first.processes[0].wait(timeout=10)

        def taken_back() -> bool:
            delivery_sweep(tenant_ids=[tenant.pk], wake=lambda **kw: None)
            return not any(m.state == State.SENDING for m in _rows(tenant))

        _wait(taken_back, 30, "the dead worker's claims were not taken back")
        assert timezone.now() < lease_ends  # by the heartbeat's silence, not by the lease running out
        assert {m.ambiguous_sends for m in _rows(tenant) if m.pk in {h.pk for h in handed}} == {1}

        # The domain's cached TLS policy names the stalling sink's port: the MX "moved" to the prompt one.
        DomainTlsPolicy.objects.filter(domain=DOMAIN).delete()
        second = CeleryWorkers(
            worker_environment(prompt, domain=DOMAIN, broker_url=broker.url, journal=journal, **TUNABLES),
            database_url=owner_database_url(),
            queues="transactional",
            concurrency=1,
        )
        workers.append(second)
        second.start()
        wake(tenant_id=tenant.pk, stream="transactional")
        _wait(
            lambda: all(m.state in Message.FINAL_STATES for m in _rows(tenant)),
            90,
            "the second worker did not finish",
        )
    finally:
        for group in workers:
            group.stop()
        stalling.stop()
        prompt.stop()
        broker.close()

    rows = _rows(tenant)
    assert {m.state for m in rows} == {State.DELIVERED_TLS}
    assert prompt.ids() == {m.message_id: 1 for m in messages}  # same Message-IDs, each once
