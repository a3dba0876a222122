"""delivery: end to end from a campaign launch to a local SMTP sink, and a bare client on the same sink.

- messages_per_second: N outbox rows created through message_enqueue_many (a campaign launch: rows
  committed in chunks of LAUNCH_CHUNK, content rendered at send time by a registered renderer, ~3 KB)
  → worker processes running the engine (claim, send gate per batch, render, RFC 5322 build, DKIM
  RSA-2048, verified STARTTLS with the test CA, outcome rows) → an aiosmtpd sink in its own process.
  Timed from the first enqueue to the last row reaching a final state; every row must be
  delivered_tls and the sink must hold every Message-ID exactly once.
- ratio_to_bare_client: the same number of pre-built, pre-signed messages of the same size sent by a
  bare aiosmtplib client over 20 verified STARTTLS connections to the same sink, in the same run.
- worker_peak_rss_mb: the largest peak resident set (VmHWM) of the engine's worker processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path

SIZES = {"small": 3000, "full": 20000}
# Sending is I/O-bound between CPU bursts (SMTP replies, database round trips): two processes per core.
WORKERS = int(os.environ.get("BENCH_DELIVERY_WORKERS", str(2 * (os.cpu_count() or 2))))
LAUNCH_CHUNK = 2000
BARE_CONNECTIONS = 20
DOMAIN = "sink.test"


def world(count: int):
    from consent import services as consent
    from consent.models import Source
    from contacts.models import Contact
    from healthmail.crypto.blind import blind_index
    from healthmail.tenants.context import tenant_context
    from tests.delivery.engine_support import SYSTEM, verified_sender_domain
    from tests.factories import BaaFactory, TenantFactory

    slug = f"bench-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Bench {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    sender, _ = verified_sender_domain(tenant, f"mail.{slug}.test")
    contact_ids = []
    with tenant_context(tenant):
        for start in range(0, count, 5000):
            contacts = []
            for index in range(start, min(count, start + 5000)):
                email = f"synthetic.patient.{index:06d}@{DOMAIN}"
                contacts.append(
                    Contact(tenant=tenant, email=email, email_index=blind_index(tenant, "email", email))
                )
            Contact.objects.bulk_create(contacts, batch_size=1000)
            contact_ids += [c.pk for c in contacts]
    from django.utils import timezone

    for start in range(0, count, 5000):
        rows = [
            (cid, "marketing_newsletters", Source.IMPORT, timezone.now())
            for cid in contact_ids[start : start + 5000]
        ]
        consent.consent_import_evidence(tenant=tenant, actor=SYSTEM, rows=rows)
    analyze()
    return tenant, sender, contact_ids


def analyze() -> None:
    """Planner statistics, as autovacuum keeps them in a running system (the tables were just
    filled). Only the owner may ANALYZE."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as owner:
        owner.execute("ANALYZE")


def launch(tenant, sender, contact_ids, *, source_id: str) -> None:
    from delivery.models import EncryptionPolicy, Stream
    from delivery.outbox import OutboxRecipient, message_enqueue_many

    for start in range(0, len(contact_ids), LAUNCH_CHUNK):
        message_enqueue_many(
            tenant=tenant,
            stream=Stream.MARKETING,
            source_type="synthetic",
            source_id=source_id,
            purpose="marketing",
            topic="marketing_newsletters",
            uses_phi=False,
            encryption_policy=EncryptionPolicy.TLS_ELSE_PORTAL,
            sender_domain=sender,
            recipients=[
                OutboxRecipient(cid, f"synthetic.patient.{start + i:06d}@{DOMAIN}")
                for i, cid in enumerate(contact_ids[start : start + LAUNCH_CHUNK])
            ],
        )


def dependencies(sink, *, stream: str):
    from delivery.engine.config import EngineSettings
    from delivery.engine.send import Dependencies
    from delivery.smtp.connection import TransportSettings
    from delivery.tls.mta_sts import HttpsPolicyFetcher
    from delivery.tls.probe import starttls_prober
    from tests.delivery.sink import resolver_from_env

    os.environ.update(sink.environment(DOMAIN))
    transport = TransportSettings(ca_file=sink.ca_file, local_hostname="sender.healthmail.test", timeout=30)
    return Dependencies(
        resolver=resolver_from_env(),
        fetcher=HttpsPolicyFetcher(ca_file=sink.ca_file),
        prober=starttls_prober(transport),
        transport=transport,
        engine=EngineSettings.from_settings(),
        portal=None,
    )


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def unfinished(tenant_id, source_id: str) -> int:
    from delivery.models import Message
    from healthmail.tenants.context import tenant_context

    with tenant_context(tenant_id):
        return Message.objects.filter(source_id=source_id).exclude(state__in=Message.FINAL_STATES).count()


def worker(tenant_id, source_id, sink, stream, launched, results) -> None:
    """One engine process: drain until the launch is complete and nothing is left."""
    from django.db import connections

    from delivery.engine.worker import drain

    connections.close_all()  # never share the parent's connection
    deps = dependencies(sink, stream=stream)
    sent = 0
    while True:
        report = drain(tenant_id=tenant_id, stream=stream, deps=deps, budget_seconds=5)
        sent += report.claimed
        if report.claimed == 0:
            if launched.is_set() and unfinished(tenant_id, source_id) == 0:
                break
            time.sleep(0.02)
    results.put({"claimed": sent, "rss_mb": peak_rss_mb(), "finished_at": time.time()})


def start_workers(count, tenant, source_id, sink, stream="marketing"):
    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("fork")  # the renderer registration and settings carry over
    launched, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=worker, args=(tenant.pk, source_id, sink, stream, launched, results))
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    return processes, launched, results


def engine_run(count: int, sink) -> dict:
    from django.db.models import Count

    import tests.delivery.synthetic_renderer  # noqa: F401 - registers the campaign renderer (forked)
    from delivery.models import Message
    from healthmail.tenants.context import tenant_context

    tenant, sender, contact_ids = world(count)
    source_id = uuid.uuid4().hex
    processes, launched, results = start_workers(WORKERS, tenant, source_id, sink)
    started = time.time()
    launch(tenant, sender, contact_ids, source_id=source_id)
    launched.set()
    reports = [results.get(timeout=3600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    finished = max(r["finished_at"] for r in reports)
    with tenant_context(tenant):
        states = dict(
            Message.objects.filter(source_id=source_id)
            .values_list("state")
            .annotate(n=Count("id"))
            .order_by()
        )
        message_ids = set(Message.objects.filter(source_id=source_id).values_list("message_id", flat=True))
    received = sink.ids()
    delivered_once = sum(1 for mid in message_ids if received.get(mid) == 1)
    return {
        "seconds": finished - started,
        "states": states,
        "delivered_once": delivered_once,
        "rss_mb": max(r["rss_mb"] for r in reports),
    }


def bare_run(count: int, sink, sample: bytes) -> float:
    """Pre-built messages of the same size over 20 verified STARTTLS connections: the ceiling."""
    import aiosmtplib

    from delivery.tls.contexts import verified_context

    context = verified_context(sink.ca_file)
    messages = [
        sample.replace(b"Message-ID: <", f"Message-ID: <bare{index}.".encode(), 1) for index in range(count)
    ]

    async def connection(batch):
        smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=sink.port, start_tls=False, use_tls=False, local_hostname="bare.test"
        )
        await smtp.connect()
        await smtp.starttls(server_hostname=sink.hostname, tls_context=context)
        for message in batch:
            await smtp.sendmail("bounce@sender.test", ["patient@sink.test"], message)
        await smtp.quit()

    async def main():
        await asyncio.gather(*(connection(messages[i::BARE_CONNECTIONS]) for i in range(BARE_CONNECTIONS)))

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started


def sample_message(sink) -> bytes:
    """One message as the engine builds it (same headers, size and DKIM signature)."""
    from delivery import dkim
    from delivery.smtp.message import build_message

    private, _ = dkim.generate_key()
    key = dkim.SigningKey("mail.bench.test", "hm1", "rsa-sha256", private)
    from tests.delivery.synthetic_renderer import render

    content = render(type("M", (), {"contact_id": uuid.uuid4()})())
    headers = [
        ("From", "Bench Clinic <news@mail.bench.test>"),
        ("To", "synthetic.patient.000001@sink.test"),
        ("Subject", content.subject),
        ("Date", "Mon, 05 Jan 2026 10:00:00 +0000"),
        ("Message-ID", f"<{uuid.uuid4().hex}@mail.bench.test>"),
        ("List-Unsubscribe", "<https://healthmail.test/p/unsubscribe/" + "x" * 120 + ">"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Feedback-ID", "campaign:bench:0123456789ab:hm-marketing"),
    ]
    return dkim.sign_message(build_message(headers, text=content.text, html=content.html), key)


def run(size: str):
    from tests.delivery.sink import SinkProcess

    count = SIZES.get(size, SIZES["full"])
    directory = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    sink = SinkProcess(directory)
    try:
        engine = engine_run(count, sink)
        bare_seconds = bare_run(count, sink, sample_message(sink))
    finally:
        sink.stop()
    rate = count / engine["seconds"]
    bare_rate = count / bare_seconds
    metrics = {
        "messages": count,
        "workers": WORKERS,
        "messages_per_second": round(rate, 1),
        "messages_per_hour": int(rate * 3600),
        "bare_client_messages_per_second": round(bare_rate, 1),
        "ratio_to_bare_client": round(rate / bare_rate, 3),
        "worker_peak_rss_mb": round(engine["rss_mb"], 1),
        "delivered_tls": engine["states"].get("delivered_tls", 0),
        "delivered_exactly_once_at_sink": engine["delivered_once"],
        "states": engine["states"],
    }
    goal = {"messages_per_second": ">= 278", "ratio_to_bare_client": ">= 0.6", "worker_peak_rss_mb": "<= 300"}
    assert metrics["delivered_tls"] == count, engine["states"]
    assert metrics["delivered_exactly_once_at_sink"] == count
    return metrics, goal
