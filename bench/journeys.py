"""journeys: CONTACTS positions waiting on a date step all become due at once (1,000,000; SIZE=small:
20,000), and single API events arrive during that load.

Set-up (not timed): one tenant with a BAA, a verified sender domain and CONTACTS opted-in contacts
(bench.delivery.world), a template, and two journeys taken through the real approval:
- "recall" (manual entry): wait 30 days → tag `recalled` → exit. Every contact is put on the wait step
  server-side (INSERT ... SELECT) with its end already past, as when a date step comes due for all.
- "lab" (event entry `lab_result.ready`): send a transactional notice → exit.
A real Celery worker on the `transactional` queue (tests/delivery/sink.py: CeleryWorkers, 2
processes) sends journey email to a recording SMTP sink in its own process.

Timed:
- advance_seconds_per_million: the engine (`positions_advance`, JOURNEYS_ADVANCE_BATCH per
  transaction, SKIP LOCKED claims) moving every due contact of "recall" to its exit, in this process;
  scaled to a million.
- event_to_send_p95_seconds: during that load, a second thread posts one named event every 0.25 s
  (`named_event_report`, as POST /api/v1/events does) and advances the woken positions by id (what the
  task `journeys_advance_positions` does); the time from posting until the sink accepted the email
  (250 after DATA), through the outbox, the wake-up and the transactional worker.
  event_to_outbox_p95_seconds: the part until the outbox row was committed.
- worker_peak_rss_mb: the peak resident set of this process, which did the workers' journey work.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

SIZES = {"small": 20_000, "full": 1_000_000}

_DUE = """
INSERT INTO journeys_position
  (id, tenant_id, journey_id, version_id, contact_id, step, state, due_at, waiting_event,
   event_arrived, visits, entered_at, updated_at, exit_reason)
SELECT gen_random_uuid(), c.tenant_id, %(journey)s, %(version)s, c.id, 'wait', 'waiting',
       now() - interval '1 second', '', false, '{"wait": 1}'::jsonb, now() - interval '30 days', now(), ''
  FROM contacts_contact c WHERE c.tenant_id = %(tenant)s
"""


def _journeys(tenant, sender):
    from healthmail.accounts.roles import Role
    from tests.campaigns.conftest import Person, template
    from tests.factories import MembershipFactory
    from tests.journeys.conftest import activated

    people = {
        role: Person(MembershipFactory(tenant=tenant, role=role).user, role)
        for role in (Role.MARKETER, Role.COMPLIANCE_OFFICER)
    }
    people = {"marketer": people[Role.MARKETER], "compliance": people[Role.COMPLIANCE_OFFICER]}
    recall = activated(
        tenant,
        people,
        {
            "entry": {"kind": "manual"},
            "start": "wait",
            "steps": {
                "wait": {"type": "wait", "seconds": 30 * 86400, "next": "tag"},
                "tag": {"type": "update", "add_tag": "recalled", "next": "done"},
                "done": {"type": "exit"},
            },
        },
        name="Recall",
    )
    template_obj = template(tenant, people["marketer"].actor)
    lab = activated(
        tenant,
        people,
        {
            "entry": {"kind": "event", "event": "lab_result.ready"},
            "start": "notice",
            "sender_domain_id": str(sender.pk),
            "steps": {
                "notice": {
                    "type": "send",
                    "template_id": str(template_obj.pk),
                    "purpose": "treatment",
                    "next": "done",
                },
                "done": {"type": "exit"},
            },
        },
        name="Lab result ready",
    )
    return recall, lab


def _events(tenant, contact_ids, stop: threading.Event, sent: dict, outbox: list) -> None:
    """One event at a time: {RFC Message-ID: posted at (epoch)} of each email the event caused."""
    from django.db import connection

    from contacts.models import Contact
    from delivery.models import Message
    from delivery.tracking.events import named_event_report
    from healthmail.actors import Actor
    from healthmail.tenants.context import tenant_context
    from journeys.models import Position
    from journeys.services import engine

    actor = Actor.system("bench")
    try:
        for contact_id in contact_ids:
            if stop.is_set():
                return
            with tenant_context(tenant):
                contact = Contact.objects.get(pk=contact_id)
            posted, started = time.time(), time.perf_counter()
            named_event_report(
                tenant=tenant,
                actor=actor,
                contact=contact,
                event_type="lab_result.ready",
                event_id=uuid.uuid4().hex,
            )
            with tenant_context(tenant):
                ids = list(
                    Position.objects.filter(contact=contact, state="waiting", step="").values_list(
                        "pk", flat=True
                    )
                )
            engine.positions_advance(tenant=tenant, ids=ids)  # commits; the outbox wakes the worker
            outbox.append(time.perf_counter() - started)
            with tenant_context(tenant):
                message_id = Message.objects.get(contact=contact, source_type="journey").message_id
            sent[message_id] = posted
            time.sleep(0.25)
    finally:
        connection.close()


def _broker_url() -> str:
    """This bench's own Redis database: its worker must not take other benchmarks' tasks."""
    from django.conf import settings

    return settings.REDIS_URL.rsplit("/", 1)[0] + "/" + os.environ.get("BENCH_JOURNEYS_REDIS_DB", "9")


def _backend_cpu() -> float:
    """User + system CPU seconds of this connection's PostgreSQL backend (the embedded server runs on
    this machine: /proc shows its processes)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _quantile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(len(ordered) * q) - 1)], 3) if ordered else None


def run(size: str):
    import redis
    from celery import Celery
    from django.db import connection

    import delivery.tasks
    import journeys.tasks
    from bench.delivery import analyze, world
    from bench.transactional_latency import _worker_env
    from healthmail.tenants.context import tenant_context
    from journeys.models import Position
    from journeys.services import engine
    from tests.delivery.sink import CeleryWorkers, SinkProcess

    journeys.tasks.advance_soon = lambda **kwargs: None  # this bench advances events itself, by id
    broker_url = _broker_url()
    redis.Redis.from_url(broker_url).flushdb()
    client = Celery("journeys-bench", broker=broker_url)

    def wake(*, tenant_id, stream: str) -> None:
        client.send_task(f"delivery.tasks.{stream}_send", kwargs={"tenant_id": str(tenant_id)}, queue=stream)

    delivery.tasks.wake = wake  # the outbox wakes the transactional worker on this bench's broker
    contacts = SIZES.get(size, SIZES["full"])
    tenant, sender, contact_ids = world(contacts)
    recall, _lab = _journeys(tenant, sender)
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(_DUE, {"journey": recall.pk, "version": recall.live_version_id, "tenant": tenant.pk})
        due = cursor.rowcount
    analyze()

    sink = SinkProcess(Path(tempfile.mkdtemp(prefix="bench-journeys-")))
    workers = CeleryWorkers(
        _worker_env(sink, broker_url), database_url=os.environ["DATABASE_URL"], queues="transactional"
    )
    stop, sent, outbox = threading.Event(), {}, []
    try:
        workers.start()
        time.sleep(8)  # the worker is up (Django + Celery start-up)
        events = threading.Thread(target=_events, args=(tenant, contact_ids[:400], stop, sent, outbox))
        backend = _backend_cpu()  # this thread's PostgreSQL session: the server side of the advance
        started, cpu = time.perf_counter(), time.thread_time()
        events.start()
        advanced = engine.positions_advance_all(tenant=tenant, budget_seconds=3600.0)
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
        backend = _backend_cpu() - backend
        stop.set()
        events.join()
        deadline = time.time() + 60
        while time.time() < deadline:
            received = {mid: at for mid, at in sink.records() if mid in sent}
            if len(received) == len(sent):
                break
            time.sleep(0.2)
    finally:
        workers.stop()
        sink.stop()
    with tenant_context(tenant):
        exited = Position.objects.filter(journey=recall, state="exited", exit_reason="completed").count()

    to_send = [received[mid] - sent[mid] for mid in received]
    metrics = {
        "contacts": contacts,
        "due_positions": due,
        "advanced": advanced,
        "exited": exited,
        "advance_seconds": round(elapsed, 2),
        "advance_seconds_per_million": round(elapsed * 1_000_000 / max(1, advanced), 1),
        # CPU seconds (the advancing thread + its database session) per million: what an advance
        # costs whatever else shares the cores (wall-clock time on a loaded machine says little).
        "advance_cpu_seconds_per_million": round((cpu + backend) * 1_000_000 / max(1, advanced), 1),
        "advance_python_cpu_seconds_per_million": round(cpu * 1_000_000 / max(1, advanced), 1),
        "advance_postgres_cpu_seconds_per_million": round(backend * 1_000_000 / max(1, advanced), 1),
        "events": len(sent),
        "events_sent": len(received),
        "event_to_send_p50_seconds": round(statistics.median(to_send), 3) if to_send else None,
        "event_to_send_p95_seconds": _quantile(to_send, 0.95),
        "event_to_outbox_p95_seconds": _quantile(outbox, 0.95),
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "batch": engine.batch_size(),
    }
    goal = {
        "advance_seconds_per_million": "<= 120",
        "event_to_send_p95_seconds": "<= 2",
        "worker_peak_rss_mb": "<= 300",
        "exited": due,
        "events_sent": len(sent),
    }
    return metrics, goal
