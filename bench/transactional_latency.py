"""transactional_latency: how long a transactional API message waits while a marketing campaign sends.

Real Celery workers (tests/delivery/sink.py: CeleryWorkers) run as in production: one worker on
the `marketing` queue (2 processes), one on the `transactional` queue (2 processes), the reconciler
not needed (nothing is lost here). A campaign of CAMPAIGN recipients (5,000 with SIZE=small,
100,000 full) is launched; once it is sending, TRANSACTIONAL messages are accepted one every
INTERVAL seconds through message_enqueue_many (sealed content, as the API stores it: the outbox row
is committed, the wake-up is sent on commit). Latency = the sink's receipt time of the message
(SMTP hand-off: 250 after DATA) minus the moment the outbox row was committed.

- p95_seconds (goal <= 1 s), p50_seconds, max_seconds
- campaign_sent_during_measurement: marketing messages the sink took while transactional ones were
  measured (proof that the campaign was really sending at the time)
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

SIZES = {"small": (5000, 100), "full": (100_000, 300)}
INTERVAL = 0.1
DOMAIN = "sink.test"


def _broker_url() -> str:
    """The latency bench's own Redis database: its workers must not take other benchmarks' tasks."""
    from django.conf import settings

    return settings.REDIS_URL.rsplit("/", 1)[0] + "/" + os.environ.get("BENCH_LATENCY_REDIS_DB", "8")


def _worker_env(sink, broker_url: str) -> dict[str, str]:
    return {
        **os.environ,
        **sink.environment(DOMAIN),
        "DJANGO_SETTINGS_MODULE": "tests.delivery.sink_settings",
        "SINK_BASE_SETTINGS": "healthmail.settings.dev",
        "SINK_BROKER_URL": broker_url,
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "DELIVERY_REDIS_PREFIX": f"hm-bench:{uuid.uuid4().hex[:8]}",
    }


def _transactional(tenant, sender, contact_id, address: str):
    from delivery.models import Stream
    from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many

    content = RenderedContent(
        subject="Your appointment", text="Synthetic appointment reminder: Tuesday 10:00.\n", html=""
    )
    (message,) = message_enqueue_many(
        tenant=tenant,
        stream=Stream.TRANSACTIONAL,
        source_type="api",
        source_id="latency",
        purpose="treatment",
        uses_phi=True,
        sender_domain=sender,
        recipients=[OutboxRecipient(contact_id, address)],
        content=content,
    )
    return message.message_id, time.time()  # the atomic block has committed: the API's 202 moment


def run(size: str):
    import redis
    from celery import Celery

    import tests.delivery.synthetic_renderer  # noqa: F401 - the campaign's renderer
    from bench.delivery import world
    from delivery.models import EncryptionPolicy, Stream
    from delivery.outbox import OutboxRecipient, message_enqueue_many
    from tests.delivery.sink import CeleryWorkers, SinkProcess

    campaign_size, transactional = SIZES.get(size, SIZES["full"])
    broker_url = _broker_url()
    redis.Redis.from_url(broker_url).flushdb()
    client = Celery("latency-client", broker=broker_url)

    def wake(*, tenant_id, stream: str) -> None:
        client.send_task(f"delivery.tasks.{stream}_send", kwargs={"tenant_id": str(tenant_id)}, queue=stream)

    import delivery.tasks

    delivery.tasks.wake = wake  # the outbox wakes workers through it, on this bench's broker
    tenant, sender, contact_ids = world(campaign_size + transactional)
    campaign, api_contacts = contact_ids[:campaign_size], contact_ids[campaign_size:]
    sink = SinkProcess(Path(tempfile.mkdtemp(prefix="bench-latency-")))
    env = _worker_env(sink, broker_url)
    marketing = CeleryWorkers(env, database_url=os.environ["DATABASE_URL"], queues="marketing")
    transactional_workers = CeleryWorkers(
        env, database_url=os.environ["DATABASE_URL"], queues="transactional"
    )
    try:
        marketing.start()
        transactional_workers.start()
        time.sleep(8)  # both workers up (Django + Celery start-up)
        for start in range(0, campaign_size, 5000):
            message_enqueue_many(
                tenant=tenant, stream=Stream.MARKETING, source_type="synthetic", source_id="campaign",
                purpose="marketing", topic="marketing_newsletters", uses_phi=False,
                encryption_policy=EncryptionPolicy.TLS_ELSE_PORTAL, sender_domain=sender,
                recipients=[OutboxRecipient(cid, f"synthetic.patient.{start + i:06d}@{DOMAIN}")
                            for i, cid in enumerate(campaign[start : start + 5000])],
            )  # fmt: skip
        while len(sink.records()) < 50:  # the campaign is sending
            time.sleep(0.2)
        before = len(sink.records())
        accepted = {}
        for index, contact_id in enumerate(api_contacts):
            address = f"synthetic.patient.{campaign_size + index:06d}@{DOMAIN}"
            message_id, at = _transactional(tenant, sender, contact_id, address)
            accepted[message_id] = at
            time.sleep(INTERVAL)
        deadline = time.time() + 120
        while time.time() < deadline:
            received = {mid: at for mid, at in sink.records() if mid in accepted}
            if len(received) == len(accepted):
                break
            time.sleep(0.2)
        during = len(sink.records()) - before - len(received)
    finally:
        marketing.stop()
        transactional_workers.stop()
        sink.stop()
    latencies = sorted(received[mid] - accepted[mid] for mid in received)
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)] if latencies else float("inf")
    metrics = {
        "campaign_messages": campaign_size,
        "transactional_messages": transactional,
        "transactional_delivered": len(received),
        "p50_seconds": round(statistics.median(latencies), 3) if latencies else None,
        "p95_seconds": round(p95, 3),
        "max_seconds": round(latencies[-1], 3) if latencies else None,
        "campaign_sent_during_measurement": during,
    }
    goal = {"p95_seconds": "<= 1.0"}
    assert len(received) == transactional, metrics
    return metrics, goal
