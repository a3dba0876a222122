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

import json
import os
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.db import connection

from consent import services as consent
from consent.models import Source
from contacts.models import Contact
from delivery.models import Message
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.crypto.blind import blind_index
from healthmail.tenants.context import tenant_context
from journeys.models import Position, StepLog
from tests.campaigns.conftest import person, template
from tests.delivery.engine_support import verified_sender_domain
from tests.delivery.sink import CeleryWorkers, SinkProcess
from tests.factories import BaaFactory, TenantFactory
from tests.journeys.conftest import activated

pytestmark = [pytest.mark.chaos, pytest.mark.usefixtures("committed_db")]

CONTACTS = int(os.environ.get("JOURNEYS_CHAOS_CONTACTS", "400"))
KILLS = int(os.environ.get("JOURNEYS_CHAOS_KILLS", "3"))
WORKERS = 2
DOMAIN = "chaos.test"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "chaos"
TIMEOUT = 240 + CONTACTS * 0.3
SYSTEM = Actor.system("chaos")

_DUE = """
INSERT INTO journeys_position
  (id, tenant_id, journey_id, version_id, contact_id, step, state, due_at, waiting_event,
   event_arrived, visits, entered_at, updated_at, exit_reason)
SELECT gen_random_uuid(), c.tenant_id, %(journey)s, %(version)s, c.id, 'wait', 'waiting',
       now() - interval '1 second', '', false, '{"wait": 1}'::jsonb, now() - interval '30 days', now(), ''
  FROM contacts_contact c WHERE c.tenant_id = %(tenant)s
"""


def _broker_url() -> str:
    return settings.REDIS_URL.rsplit("/", 1)[0] + "/" + os.environ.get("JOURNEYS_CHAOS_REDIS_DB", "6")


def _world(count: int):
    slug = f"jchaos-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Journey chaos {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    sender, _ = verified_sender_domain(tenant, f"mail.{slug}.test")
    with tenant_context(tenant):
        contacts = [
            Contact(
                tenant=tenant,
                email=f"p{i:05d}@{DOMAIN}",
                email_index=blind_index(tenant, "email", f"p{i:05d}@{DOMAIN}"),
            )
            for i in range(count)
        ]
        Contact.objects.bulk_create(contacts, batch_size=1000)
    consent.consent_import_evidence(
        tenant=tenant,
        actor=SYSTEM,
        rows=[(c.pk, "marketing_newsletters", Source.IMPORT, c.created_at) for c in contacts],
    )
    people = {
        "marketer": person(tenant, Role.MARKETER),
        "compliance": person(tenant, Role.COMPLIANCE_OFFICER),
    }
    body = {
        "entry": {"kind": "manual"},
        "start": "wait",
        "sender_domain_id": str(sender.pk),
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
    seed = int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(10**6)))
    rng = random.Random(seed)
    broker_url = _broker_url()
    redis.Redis.from_url(broker_url).flushdb()
    client = Celery("journeys-chaos", broker=broker_url)
    tenant, journey = _world(CONTACTS)
    sink = SinkProcess(tmp_path)  # the workers' settings module wants a sink; nothing is sent to it
    owner = settings.DATABASES["owner"]
    env = {
        **os.environ,
        **sink.environment(DOMAIN),
        "DJANGO_SETTINGS_MODULE": "tests.delivery.sink_settings",
        "SINK_BASE_SETTINGS": "healthmail.settings.test",
        "SINK_BROKER_URL": broker_url,
        "SINK_APPLICATION_NAME": f"jchaos-{uuid.uuid4().hex[:8]}",
        "JOURNEYS_ADVANCE_BATCH": "5",
    }
    database_url = f"postgres://{owner['USER']}@{owner['HOST']}:{owner['PORT']}/{owner['NAME']}"
    workers = CeleryWorkers(env, database_url=database_url, queues="marketing")
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
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"journeys-{CONTACTS}.json").write_text(json.dumps(report, indent=2) + "\n")
    print("journeys chaos report:", json.dumps(report))

    assert report["states"] == {"exited:completed": CONTACTS}, report  # none lost
    for position_id, _, _ in positions:  # each step once: no contact advanced twice
        assert per_step[(position_id, "tag", "updated")] == 1, report
        assert per_step[(position_id, "mail", "sent")] == 1, report
        assert per_step[(position_id, "done", "exited")] == 1, report
    assert report["sent_twice"] == 0, report
    assert report["emails"] == CONTACTS, report
    assert len(log) == KILLS, report
