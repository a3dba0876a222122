"""Real outages during a campaign (issue 24; RELIABILITY R1-R4), one scenario each, reported:

- `postgres`: the embedded PostgreSQL stopped with `pg_ctl stop -m immediate`, started again after
  CHAOS_OUTAGE_SECONDS; the other test processes of the run share the server, so this scenario runs
  while none of them runs a test (tests/server_alone.py), and never against a server DATABASE_URL
  names;
- `redis_nosave` / `redis_kill`: the workers' Redis (broker and cache, a server of the scenario's
  own) gone with SHUTDOWN NOSAVE or kill -9, restarted empty;
- `worker_kill`: kill -9 of a whole worker (parent and pool), a new one started;
- `hostile`: a receiver that drops 1% of connections after accepting, answers 5% 4xx and 2% 5xx, and
  stalls 1% (CHAOS_STALL_SECONDS) before accepting.

Real Celery workers (prefork) with production-like claims (DELIVERY_LEASE_SECONDS=300, heartbeats),
the test acting as beat (a sweep every CHAOS_SWEEP_SECONDS). During an outage the test also posts
messages to the API and records every HTTP status. The report (printed, and
artifacts/chaos/outage-<scenario>-<N>.json) gives per scenario: sent, delivered, lost, duplicates
(ambiguous or not), seconds until sending resumed after the service returned, seconds to drain after
it, and the HTTP codes seen. It fails unless: 0 lost, 0 duplicates that are not ambiguous hand-offs,
sending resumed within 30 s, and every error answer during the outage a 503 with Retry-After.

Small by default, as part of `make test`: 30 recipients, 2-second outages, a sink answering in
0.05 s, one worker (two for `worker_kill`, so one survives the kill): each scenario runs on its own
broker, sink and tenant, so pytest-xdist runs them side by side. `make chaos` runs them at full size
(CHAOS_OUTAGE_RECIPIENTS=2000, CHAOS_OUTAGE_SECONDS=20, CHAOS_OUTAGE_SINK_DELAY=0.2,
CHAOS_OUTAGE_WORKERS=2). The production settings that decide the outcome (claim length, heartbeats,
their grace, RFC timeouts) are the same at both sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections import Counter

import pytest
from django.db import connections
from django.test import Client

from delivery.engine.sweeper import delivery_sweep
from delivery.models import Message
from healthmail import devstack
from healthmail.accounts.api_keys import SCOPES, api_key_create
from healthmail.actors import Actor
from healthmail.outages import OUTAGE_ERRORS
from healthmail.tenants.context import tenant_context
from tests.chaos.harness import chaos_random, report_write
from tests.delivery.sink import CeleryWorkers, SinkProcess
from tests.outages.real_workers import (
    campaign,
    campaign_enqueue,
    owner_database_url,
    waker,
    worker_environment,
)
from tests.outages.support import PrivateRedis, broker_at

pytestmark = [pytest.mark.chaos, pytest.mark.usefixtures("committed_db")]

RECIPIENTS = int(os.environ.get("CHAOS_OUTAGE_RECIPIENTS", "30"))
OUTAGE = float(os.environ.get("CHAOS_OUTAGE_SECONDS", "2"))
SINK_DELAY = float(os.environ.get("CHAOS_OUTAGE_SINK_DELAY", "0.05"))
WORKERS = int(os.environ.get("CHAOS_OUTAGE_WORKERS", "1"))
SWEEP = float(os.environ.get("CHAOS_SWEEP_SECONDS", "5"))
STALL = float(os.environ.get("CHAOS_STALL_SECONDS", "3"))
DOMAIN = "outage.test"
TIMEOUT = 120 + RECIPIENTS * 0.1
RESUME_WITHIN = 30.0
# Each can be set for a run as CHAOS_<NAME> (e.g. CHAOS_DELIVERY_HEARTBEAT_GRACE_SECONDS=20 for
# production's heartbeat grace).
TUNABLES = {
    "DELIVERY_LEASE_SECONDS": "300",  # production's claim length: heartbeats, not leases, free claims
    "DELIVERY_HEARTBEAT_SECONDS": "1",
    "DELIVERY_HEARTBEAT_GRACE_SECONDS": "5",
    "DELIVERY_DRAIN_SECONDS": "5",
    "DELIVERY_CLAIM_BATCH": "10",
    "DELIVERY_MESSAGES_PER_CONNECTION": "5",
    "DELIVERY_RETRY_MINIMUM_SECONDS": "1",
    "DELIVERY_SOON_SECONDS": "1",
    "DELIVERY_MX_CONCURRENCY": "100",
    "DELIVERY_SMTP_STALL_SECONDS": "1",
    "DELIVERY_RECOVERY_SECONDS": "120",
}
TUNABLES = {name: os.environ.get(f"CHAOS_{name}", value) for name, value in TUNABLES.items()}
# `postgres` stops the server every test process of the run shares: it runs alone (tests/server_alone.py).
SCENARIOS = [
    pytest.param("postgres", marks=pytest.mark.server_alone, id="postgres"),
    "redis_nosave",
    "redis_kill",
    "worker_kill",
    "hostile",
]


def _postgres_controllable() -> bool:
    """Only the embedded server of this checkout (no other test of the run is running: the scenario's
    marker), never a server DATABASE_URL names."""
    owner = connections["owner"].settings_dict
    return devstack._pg_running() and str(owner["PORT"]) == str(devstack._port("postgres"))


def _postgres(action: str) -> None:
    if action == "stop":
        command = [devstack._pg_bin("pg_ctl"), "-D", str(devstack.PG_DATA), "-m", "immediate", "-w", "stop"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **devstack._as_pg_user())
        for alias in connections:
            connections[alias].close()
    else:
        devstack.start_postgres()


def _rows(tenant) -> list[tuple[str, str, int]] | None:
    """(Message-ID, state, ambiguous_sends) of every row, or None while the database is away."""
    try:
        with tenant_context(tenant):
            return list(Message.objects.values_list("message_id", "state", "ambiguous_sends"))
    except OUTAGE_ERRORS:
        for alias in connections:
            connections[alias].close()
        return None


class Api:
    """Posts one transactional message per call and notes what came back."""

    def __init__(self, tenant) -> None:
        key = api_key_create(actor=Actor.system("chaos"), tenant=tenant, name="Chaos", scopes=list(SCOPES))
        self.client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
        self.codes: Counter = Counter()
        self.without_retry_after = 0
        self.accepted = 0
        self.slowest = 0.0

    def warm(self) -> None:
        """One request before the fault, not counted: a process's first request imports and connects
        (seconds here), which production's warm web workers have done long before an outage."""
        self.post()
        self.codes.clear()
        self.without_retry_after = self.accepted = 0
        self.slowest = 0.0

    def post(self) -> None:
        body = {
            "recipient": {"address": f"api-{uuid.uuid4().hex[:8]}@{DOMAIN}"},
            "purpose": "operations",
            "content": {"subject": "Clinic closed Friday", "html": "<p>We are closed on Friday.</p>"},
        }
        started = time.monotonic()
        response = self.client.post("/api/v1/messages", json.dumps(body), content_type="application/json")
        self.slowest = max(self.slowest, time.monotonic() - started)
        self.codes[response.status_code] += 1
        self.accepted += response.status_code == 202
        if response.status_code >= 500 and not response.get("Retry-After"):
            self.without_retry_after += 1


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_an_outage_loses_nothing_duplicates_only_ambiguous_hand_offs_and_recovers_in_seconds(
    scenario, tmp_path, settings
):
    if scenario == "postgres" and not _postgres_controllable():
        pytest.skip("only the embedded PostgreSQL of this checkout is stopped, not DATABASE_URL's")
    seed, rng = chaos_random()
    settings.DELIVERY_JOURNAL_DIR = journal = str(tmp_path / "journal")  # one host: its sweeps replay it
    settings.DELIVERY_HEARTBEAT_GRACE_SECONDS = float(TUNABLES["DELIVERY_HEARTBEAT_GRACE_SECONDS"])
    broker = PrivateRedis()  # the workers' broker and cache, and this process's, for this scenario only
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": broker.url}}
    (tmp_path / "sink").mkdir()
    sink = SinkProcess(
        tmp_path / "sink", delay=SINK_DELAY, hostile=seed if scenario == "hostile" else None, stall=STALL
    )
    tenant, sender, contacts = campaign(RECIPIENTS, DOMAIN, prefix=f"outage-{scenario.replace('_', '-')}")
    api = Api(tenant)
    wake = waker(broker.url)
    environment = worker_environment(sink, domain=DOMAIN, broker_url=broker.url, journal=journal, **TUNABLES)
    workers = CeleryWorkers(environment, database_url=owner_database_url())
    fault_at = rng.uniform(0.2, 0.4)
    faulted = returned = None
    last_sweep = 0.0
    try:
        with broker_at(broker.url):
            for _ in range(max(WORKERS, 2) if scenario == "worker_kill" else WORKERS):
                workers.start()
            api.warm()
            campaign_enqueue(tenant, sender, contacts, DOMAIN, source_id="chaos-outage")
            wake(tenant_id=tenant.pk, stream="marketing")
            started = time.monotonic()
            while True:
                assert time.monotonic() - started < TIMEOUT, f"not finished (seed {seed}): {_rows(tenant)}"
                rows = _rows(tenant) or []
                done = sum(1 for _, state, _ in rows if state in Message.FINAL_STATES)
                if rows and done == len(rows) and (faulted is not None or scenario == "hostile"):
                    break
                if faulted is None and scenario != "hostile" and done >= fault_at * RECIPIENTS:
                    faulted = time.time()
                    _outage(scenario, broker, workers, api)
                    returned = time.time()
                workers.supervise()
                if time.monotonic() - last_sweep >= SWEEP:  # the beat's reconciler
                    try:
                        delivery_sweep(wake=wake, tenant_ids=[tenant.pk])
                    except OUTAGE_ERRORS:
                        for alias in connections:
                            connections[alias].close()
                    last_sweep = time.monotonic()
                time.sleep(0.2)
            finished = time.time()
    finally:
        workers.stop()
        sink.stop()
        broker.close()

    rows = _rows(tenant)
    received = sink.ids()
    records = sink.records()
    ambiguous = {mid for mid, _, count in rows if count}
    duplicates = {mid for mid, n in received.items() if n > 1}
    delivered = [mid for mid, state, _ in rows if state.startswith("delivered")]
    after = sorted(at for _, at in records if returned is not None and at >= returned)
    report = {
        "scenario": scenario,
        "seed": seed,
        "sent": len(rows),
        "api_accepted_during_outage": api.accepted,
        "states": dict(Counter(state for _, state, _ in rows)),
        "delivered": len(delivered),
        "lost": sum(1 for mid in delivered if not received.get(mid)),
        "duplicates_ambiguous": len(duplicates & ambiguous),
        "duplicates_not_ambiguous": len(duplicates - ambiguous),
        "marked_ambiguous": len(ambiguous),
        "outage_seconds": round(returned - faulted, 1) if faulted else None,
        "resumed_after_seconds": round(after[0] - returned, 1) if after else None,
        "drained_after_seconds": round(finished - returned, 1) if returned else None,
        "http_codes_during_outage": dict(api.codes),
        "http_5xx_without_retry_after": api.without_retry_after,
        "slowest_request_seconds_during_outage": round(api.slowest, 2) if api.codes else None,
        "workers_started": workers.started,
        "workers_restarted_after_exit": workers.restarted,
    }
    report_write(f"outage-{scenario}-{RECIPIENTS}", report, label="outage chaos report")

    assert all(state in Message.FINAL_STATES for _, state, _ in rows), report
    assert report["lost"] == 0, report
    assert report["duplicates_not_ambiguous"] == 0, report
    assert all(n <= 1 + count for mid, _, count in rows if (n := received.get(mid, 0))), report
    assert set(api.codes) <= {202, 503}, report  # 503 while the database is away; never another error
    assert api.without_retry_after == 0, report
    # The workers survive the outage (healthmail/broker.py); CeleryWorkers.supervise() would hide an exit.
    assert report["workers_restarted_after_exit"] == 0, report
    if scenario == "postgres":
        assert api.codes[503] > 0, report  # the outage was real
    if returned is not None and len(delivered) > len(after) and after:
        assert report["resumed_after_seconds"] <= RESUME_WITHIN, report


def _outage(scenario: str, broker: PrivateRedis, workers: CeleryWorkers, api: Api) -> None:
    """Break the service, keep posting to the API for CHAOS_OUTAGE_SECONDS, then bring it back."""
    if scenario == "worker_kill":
        workers.replace(workers.alive()[0])  # not counted as an exit: it was killed and replaced here
        return
    if scenario == "postgres":
        _postgres("stop")
    elif scenario == "redis_nosave":
        broker.shutdown()
    else:
        broker.kill()
    until = time.monotonic() + OUTAGE
    while time.monotonic() < until:
        api.post()
        time.sleep(0.2)
    if scenario == "postgres":
        _postgres("start")
    else:
        broker.start()
