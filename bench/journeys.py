"""journeys: CONTACTS positions waiting on a date step all become due at once (1,000,000; SIZE=small:
20,000), and single API events arrive during that load.

Set-up (not timed): one tenant with a BAA, a verified sender domain and CONTACTS opted-in contacts
(bench.delivery.world), a template, and two journeys taken through the real approval:
- "recall" (manual entry): wait 30 days → tag `recalled` → exit. Every contact is put on the wait step
  server-side (INSERT ... SELECT) with its end already past, as when a date step comes due for all.
- "lab" (event entry `lab_result.ready`): send a transactional notice → exit.

Timed:
- advance_seconds_per_million: the engine (`positions_advance`, JOURNEYS_ADVANCE_BATCH per
  transaction, SKIP LOCKED claims) moving every due contact of "recall" to its exit, in this process;
  scaled to a million.
- event_to_outbox_p95_seconds: during that load, a second thread posts one named event every 0.25 s
  (`named_event_report`, as POST /api/v1/events does) and advances the woken positions by id (what the
  task `journeys_advance_positions` does); the time from posting until the message is in the outbox,
  committed. The SMTP leg after the outbox is measured by `transactional_latency`.
- worker_peak_rss_mb: the peak resident set of this process, which did the workers' journey work.
"""

from __future__ import annotations

import resource
import statistics
import threading
import time
import uuid

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


def _events(tenant, contact_ids, stop: threading.Event, latencies: list) -> None:
    from django.db import connection

    from audit.actors import Actor
    from contacts.models import Contact
    from delivery.models import Message
    from delivery.tracking.events import named_event_report
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
            started = time.perf_counter()
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
            engine.positions_advance(tenant=tenant, ids=ids)
            with tenant_context(tenant):
                assert Message.objects.filter(contact=contact, source_type="journey").exists()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.25)
    finally:
        connection.close()


def run(size: str):
    from django.db import connection

    import journeys.tasks
    from bench.delivery import analyze, world
    from healthmail.tenants.context import tenant_context
    from journeys.models import Position
    from journeys.services import engine

    journeys.tasks.advance_soon = lambda **kwargs: None  # this bench advances events itself, by id
    contacts = SIZES.get(size, SIZES["full"])
    tenant, sender, contact_ids = world(contacts)
    recall, _lab = _journeys(tenant, sender)
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(_DUE, {"journey": recall.pk, "version": recall.live_version_id, "tenant": tenant.pk})
        due = cursor.rowcount
    analyze()

    stop, latencies = threading.Event(), []
    events = threading.Thread(target=_events, args=(tenant, contact_ids[:200], stop, latencies))
    started = time.perf_counter()
    events.start()
    advanced = engine.positions_advance_all(tenant=tenant, budget_seconds=3600.0)
    elapsed = time.perf_counter() - started
    stop.set()
    events.join()
    with tenant_context(tenant):
        exited = Position.objects.filter(journey=recall, state="exited", exit_reason="completed").count()

    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else None
    metrics = {
        "contacts": contacts,
        "due_positions": due,
        "advanced": advanced,
        "exited": exited,
        "advance_seconds": round(elapsed, 2),
        "advance_seconds_per_million": round(elapsed * 1_000_000 / max(1, advanced), 1),
        "events": len(latencies),
        "event_to_outbox_p50_seconds": round(statistics.median(latencies), 3) if latencies else None,
        "event_to_outbox_p95_seconds": round(p95, 3) if p95 is not None else None,
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    goal = {
        "advance_seconds_per_million": "<= 120",
        "event_to_outbox_p95_seconds": "<= 2",
        "worker_peak_rss_mb": "<= 300",
        "exited": due,
    }
    return metrics, goal
