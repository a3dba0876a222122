"""RELIABILITY R1/R2/R3 for delivery: real Celery workers send a campaign to a recording SMTP sink
while we `kill -9` workers at random moments, cut their PostgreSQL sessions and flush the broker.
Afterwards every message is in a final state, none is lost, and a Message-ID reaches the sink more
than once only for messages counted in `ambiguous_sends` (handed to SMTP when their worker died).

Small by default (CHAOS_RECIPIENTS=300, CHAOS_KILLS=3: part of `make test`); `make chaos` runs the
full size (10,000 recipients, 20 kills). The report is printed and written to artifacts/chaos/.

A PostgreSQL restart cannot be done to the embedded server every engineer's tests share, so it is
simulated the way the workers see one: pg_terminate_backend() of every session of the workers
(matched by their application_name), as the owner role, mid-campaign. The broker loss is a FLUSHDB of
the Redis database the chaos workers use, which is theirs alone (CHAOS_REDIS_DB).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter

import psycopg
import pytest
import redis
from django.conf import settings

from delivery.engine.sweeper import delivery_sweep
from delivery.models import Message
from healthmail.tenants.context import tenant_context
from tests.chaos.harness import chaos_random, private_broker, report_write
from tests.delivery.sink import CeleryWorkers, SinkProcess
from tests.outages.real_workers import (
    campaign,
    campaign_enqueue,
    owner_database_url,
    waker,
    worker_environment,
)

pytestmark = [pytest.mark.chaos, pytest.mark.usefixtures("committed_db")]

RECIPIENTS = int(os.environ.get("CHAOS_RECIPIENTS", "300"))
KILLS = int(os.environ.get("CHAOS_KILLS", "3"))
WORKERS = 2
DOMAIN = "chaos.test"
TIMEOUT = 240 + RECIPIENTS * 0.05


def _owner_dsn() -> dict:
    owner = settings.DATABASES["owner"]
    return {
        "host": owner["HOST"],
        "port": owner["PORT"],
        "user": owner["USER"],
        "password": owner["PASSWORD"] or None,
        "dbname": owner["NAME"],
    }


def _states(tenant) -> Counter:
    with tenant_context(tenant):
        return Counter(Message.objects.values_list("state", flat=True))


def test_no_message_is_lost_and_duplicates_are_only_ambiguous_hand_offs(tmp_path, monkeypatch, settings):
    seed, rng = chaos_random()
    broker_url = private_broker("CHAOS_REDIS_DB", "7")
    wake = waker(broker_url)
    monkeypatch.setattr("delivery.tasks.wake", wake)  # the outbox and the sweeper wake through it
    tenant, sender, contacts = campaign(RECIPIENTS, DOMAIN)
    sink = SinkProcess(tmp_path, delay=float(os.environ.get("CHAOS_SINK_DELAY", "0.05")))
    application_name = f"chaos-{uuid.uuid4().hex[:8]}"
    tunables = {  # small batches and short leases: many claims, hand-offs and reclaims in a short run
        "DELIVERY_LEASE_SECONDS": "4",
        "DELIVERY_HEARTBEAT_SECONDS": "0.5",  # a killed worker's claims move on 2 s after its last beat
        "DELIVERY_HEARTBEAT_GRACE_SECONDS": "2",
        "DELIVERY_DRAIN_SECONDS": "3",
        "DELIVERY_CLAIM_BATCH": "10",
        "DELIVERY_MESSAGES_PER_CONNECTION": "5",
        "DELIVERY_MX_LEASE_SECONDS": "10",
        "DELIVERY_MX_CONCURRENCY": "500",
        "DELIVERY_RETRY_MINIMUM_SECONDS": "1",
        "DELIVERY_SOON_SECONDS": "1",
        "DELIVERY_PARALLEL_DRAINS": "4",
        "DELIVERY_REDIS_PREFIX": f"hm-chaos:{application_name}",
    }
    # One host: the workers and this process (whose sweeps replay it) share the outcome journal.
    settings.DELIVERY_JOURNAL_DIR = journal = str(tmp_path / "journal")
    settings.DELIVERY_HEARTBEAT_GRACE_SECONDS = float(tunables["DELIVERY_HEARTBEAT_GRACE_SECONDS"])
    env = worker_environment(
        sink,
        domain=DOMAIN,
        broker_url=broker_url,
        journal=journal,
        application_name=application_name,
        **tunables,
    )
    workers = CeleryWorkers(env, database_url=owner_database_url())
    # Faults fire when the campaign crosses random points of its progress, so they land mid-send.
    events = sorted(
        [(rng.uniform(0.05, 0.85), "kill") for _ in range(KILLS)]
        + [(rng.uniform(0.2, 0.7), "postgres"), (rng.uniform(0.3, 0.8), "redis")]
    )
    log: list[dict] = []
    try:
        for _ in range(WORKERS):
            workers.start()
        campaign_enqueue(tenant, sender, contacts, DOMAIN, source_id="chaos-campaign")
        started = time.monotonic()
        last_sweep = 0.0
        while True:
            assert time.monotonic() - started < TIMEOUT, (
                f"not finished in time (seed {seed}): {_states(tenant)}"
            )
            states = _states(tenant)
            done = sum(n for state, n in states.items() if state in Message.FINAL_STATES)
            if done == RECIPIENTS:
                break
            while events and done / RECIPIENTS >= events[0][0]:
                _, kind = events.pop(0)
                log.append(
                    {
                        "at": round(done / RECIPIENTS, 3),
                        "fault": kind,
                        "detail": _fault(kind, workers, rng, application_name, broker_url),
                    }
                )
            if time.monotonic() - last_sweep >= 1.0:  # the beat's reconciler, every second here
                delivery_sweep(wake=wake, tenant_ids=[tenant.pk])
                last_sweep = time.monotonic()
            time.sleep(0.1)
        elapsed = time.monotonic() - started
    finally:
        workers.stop()
        sink.stop()

    with tenant_context(tenant):
        rows = list(Message.objects.values_list("message_id", "state", "ambiguous_sends"))
    received = sink.ids()
    ambiguous = {mid for mid, _, count in rows if count}
    duplicates = {mid: n for mid, n in received.items() if n > 1}
    report = {
        "seed": seed,
        "recipients": RECIPIENTS,
        "seconds": round(elapsed, 1),
        "faults": log,
        "states": dict(Counter(state for _, state, _ in rows)),
        "lost": sum(1 for mid, _, _ in rows if received.get(mid, 0) == 0),
        "marked_ambiguous": len(ambiguous),
        "duplicates_at_sink": len(duplicates),
        "extra_copies": sum(n - 1 for n in duplicates.values()),
        "workers_started": workers.started,
    }
    report_write(f"delivery-{RECIPIENTS}", report, label="chaos report")

    assert report["states"] == {Message.State.DELIVERED_TLS: RECIPIENTS}, report
    assert report["lost"] == 0, report
    assert set(duplicates) <= ambiguous, report  # every duplicate was counted as ambiguous
    by_id = {mid: count for mid, _, count in rows}
    assert all(n <= 1 + by_id[mid] for mid, n in received.items()), report
    assert set(received) == set(by_id), report  # the sink saw nothing that is not ours
    assert len([f for f in log if f["fault"] == "kill"]) == KILLS, report


def _fault(
    kind: str, workers: CeleryWorkers, rng: random.Random, application_name: str, broker_url: str
) -> str:
    if kind == "kill":
        return workers.kill(rng)
    if kind == "postgres":
        with psycopg.connect(**_owner_dsn(), autocommit=True) as owner:
            terminated = owner.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                [application_name],
            ).fetchone()[0]
        return f"terminated {terminated} worker sessions"
    redis.Redis.from_url(broker_url).flushdb()
    return "flushed the broker"
