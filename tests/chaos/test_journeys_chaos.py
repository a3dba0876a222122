"""RELIABILITY R1 for journeys: real Celery workers advance due journey positions while we `kill -9`
workers (a pool child or a whole worker) at random moments. Afterwards every contact has left the
journey exactly once: one tag step, one email queued, one exit each, and none is left behind.

The journey: a 30-day wait whose end has passed for every contact (as when a date step comes due for
all), a tag, a marketing email (the send gate and the outbox, in the claim's transaction), exit.
Small batches (JOURNEYS_ADVANCE_BATCH=5) make many transactions, so the kills land inside them. The
beat's sweep is played by this test: every second it asks the workers to advance what is due.

Small by default (JOURNEYS_CHAOS_CONTACTS=400, JOURNEYS_CHAOS_KILLS=3: part of `make test`); `make
chaos` may raise both. The report is printed and written to artifacts/chaos/.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter

import pytest
from celery import Celery
from django.db import connection

from delivery.models import Message
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from journeys.models import Position, StepLog
from tests.campaigns.conftest import person, template
from tests.chaos.harness import chaos_random, private_broker, report_write
from tests.delivery.sink import CeleryWorkers, SinkProcess
from tests.journeys.conftest import activated
from tests.outages.real_workers import campaign, owner_database_url, worker_environment

pytestmark = [pytest.mark.chaos, pytest.mark.usefixtures("committed_db")]

CONTACTS = int(os.environ.get("JOURNEYS_CHAOS_CONTACTS", "400"))
KILLS = int(os.environ.get("JOURNEYS_CHAOS_KILLS", "3"))
WORKERS = 2
DOMAIN = "chaos.test"
TIMEOUT = 240 + CONTACTS * 0.3

_DUE = """
INSERT INTO journeys_position
  (id, tenant_id, journey_id, version_id, contact_id, step, state, due_at, waiting_event,
   event_arrived, visits, entered_at, updated_at, exit_reason)
SELECT gen_random_uuid(), c.tenant_id, %(journey)s, %(version)s, c.id, 'wait', 'waiting',
       now() - interval '1 second', '', false, '{"wait": 1}'::jsonb, now() - interval '30 days', now(), ''
  FROM contacts_contact c WHERE c.tenant_id = %(tenant)s
"""


def _world(count: int):
    tenant, sender, _ = campaign(count, DOMAIN, prefix="jchaos")
    people = {
        "marketer": person(tenant, Role.MARKETER),
        "compliance": person(tenant, Role.COMPLIANCE_OFFICER),
    }
    body = {
        "entry": {"kind": "manual"},
        "start": "wait",
        "sender_domain_id": str(sender.pk),
        "sender_name": "Synthetic Clinic",
        "steps": {
            "wait": {"type": "wait", "seconds": 30 * 86400, "next": "tag"},
            "tag": {"type": "update", "add_tag": "recalled", "next": "mail"},
            "mail": {
                "type": "send",
                "template_id": str(template(tenant, people["marketer"].actor).pk),
                "purpose": "marketing",
                "topic": "marketing_newsletters",
                "next": "done",
            },
            "done": {"type": "exit"},
        },
    }
    journey = activated(tenant, people, body, name="Chaos recall")
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(_DUE, {"journey": journey.pk, "version": journey.live_version_id, "tenant": tenant.pk})
    return tenant, journey


def _progress(tenant, journey) -> int:
    with tenant_context(tenant):
        return Position.objects.filter(journey=journey, state="exited").count()


def test_no_contact_advances_twice_or_is_lost_when_workers_are_killed(tmp_path):
    seed, rng = chaos_random()
    broker_url = private_broker("JOURNEYS_CHAOS_REDIS_DB", "6")
    client = Celery("journeys-chaos", broker=broker_url)
    tenant, journey = _world(CONTACTS)
    sink = SinkProcess(tmp_path)  # the workers' settings module wants a sink; nothing is sent to it
    env = worker_environment(
        sink,
        domain=DOMAIN,
        broker_url=broker_url,
        journal=str(tmp_path / "journal"),
        application_name=f"jchaos-{uuid.uuid4().hex[:8]}",
        JOURNEYS_ADVANCE_BATCH="5",
    )
    workers = CeleryWorkers(env, database_url=owner_database_url(), queues="marketing")
    kills = sorted(rng.uniform(0.05, 0.6) for _ in range(KILLS))
    log: list[dict] = []
    try:
        for _ in range(WORKERS):
            workers.start()
        started = time.monotonic()
        last_sweep = 0.0
        while True:
            done = _progress(tenant, journey)
            assert time.monotonic() - started < TIMEOUT, f"not finished in time (seed {seed}): {done}"
            if kills and done / CONTACTS >= kills[0]:  # one kill per look: each lands mid-run
                kills.pop(0)
                log.append({"at": round(done / CONTACTS, 3), "killed": workers.kill(rng)})
            elif done == CONTACTS:
                break
            if time.monotonic() - last_sweep >= 1.0:  # the beat's sweep
                for _ in range(WORKERS):
                    client.send_task(
                        "journeys.tasks.journeys_advance_due",
                        kwargs={"tenant_id": str(tenant.pk)},
                        queue="marketing",
                    )
                last_sweep = time.monotonic()
            time.sleep(0.05)
        elapsed = time.monotonic() - started
    finally:
        workers.stop()
        sink.stop()

    with tenant_context(tenant):
        positions = list(Position.objects.filter(journey=journey).values_list("pk", "state", "exit_reason"))
        per_step = Counter(
            (position_id, step, outcome)
            for position_id, step, outcome in StepLog.objects.filter(journey=journey).values_list(
                "position_id", "step", "outcome"
            )
        )
        mail = Counter(Message.objects.filter(source_type="journey").values_list("contact_id", flat=True))
    report = {
        "seed": seed,
        "contacts": CONTACTS,
        "seconds": round(elapsed, 1),
        "kills": log,
        "states": dict(Counter(f"{state}:{reason}" for _, state, reason in positions)),
        "tagged_twice": sum(1 for (_, step, _), n in per_step.items() if step == "tag" and n > 1),
        "sent_twice": sum(1 for n in mail.values() if n > 1),
        "emails": sum(mail.values()),
        "workers_started": workers.started,
    }
    report_write(f"journeys-{CONTACTS}", report, label="journeys chaos report")

    assert report["states"] == {"exited:completed": CONTACTS}, report  # none lost
    for position_id, _, _ in positions:  # each step once: no contact advanced twice
        assert per_step[(position_id, "tag", "updated")] == 1, report
        assert per_step[(position_id, "mail", "sent")] == 1, report
        assert per_step[(position_id, "done", "exited")] == 1, report
    assert report["sent_twice"] == 0, report
    assert report["emails"] == CONTACTS, report
    assert len(log) == KILLS, report
