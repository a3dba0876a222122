"""A worker's loop for one (tenant, stream): claim due rows, send them, until none are due or the
time budget is spent (then the task re-enqueues itself, so other tenants' tasks get their turn).

A large backlog is drained by several processes at once: a drain whose first batch came back full
wakes one more drain, as long as one of DELIVERY_PARALLEL_DRAINS slots (Redis keys that expire on
their own, so a killed worker frees its slot) is free. Slots only limit fanning out; every woken task
drains, so a wake is never dropped.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from healthmail.outages import OUTAGE_ERRORS, REDIS_ERRORS
from healthmail.tenants.context import tenant_context

from .claim import messages_claim, worker_name
from .heartbeat import Heartbeat
from .recovery import drain_recover, journal_record_all
from .send import BatchReport, Dependencies, send_claimed
from .sweeper import claims_take_back


@dataclass
class DrainReport(BatchReport):
    more: bool = False  # the budget ran out with rows still due


class DrainSlots:
    def __init__(self, tenant_id: uuid.UUID, stream: str, *, size: int, ttl: float) -> None:
        self.keys = [f"delivery:drain:{tenant_id}:{stream}:{index}" for index in range(size)]
        self.ttl = max(1, int(ttl))
        self.held: str | None = None

    def take(self) -> bool:
        # Slots only limit fanning out: without Redis a drain still drains, it just wakes no helper.
        with contextlib.suppress(*REDIS_ERRORS):
            for key in self.keys:
                if cache.add(key, worker_name(), timeout=self.ttl):
                    self.held = key
                    return True
        return False

    def release(self) -> None:
        if self.held is not None:
            with contextlib.suppress(*REDIS_ERRORS):  # the key expires on its own
                cache.delete(self.held)
            self.held = None


def drain(
    *,
    tenant_id: uuid.UUID,
    stream: str,
    deps: Dependencies | None = None,
    budget_seconds: float | None = None,
    fan_out: Callable[[], None] | None = None,
) -> DrainReport:
    deps = deps or Dependencies.from_settings()
    budget = deps.engine.drain_seconds if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    worker = worker_name()
    report = DrainReport()
    slots = DrainSlots(
        tenant_id, stream, size=int(getattr(settings, "DELIVERY_PARALLEL_DRAINS", 4)), ttl=budget + 60
    )
    heartbeat = Heartbeat(worker, interval=deps.engine.heartbeat)
    try:
        journal_record_all()  # answers a worker on this host got but could not record yet
        _take_back_dead_claims(tenant_id, deps.engine.heartbeat_grace)
        heartbeat.start()  # beats until the drain ends: our claims stay ours however long SMTP waits
        while True:
            messages = messages_claim(
                tenant_id=tenant_id,
                stream=stream,
                worker=worker,
                limit=deps.engine.claim_batch,
                lease=deps.engine.lease,
            )
            if not messages:
                return report
            if not report.claimed:
                slots.take()  # only a drain with work counts against the fan-out (an empty one is a query)
            if fan_out is not None and len(messages) == deps.engine.claim_batch and not report.claimed:
                helper = DrainSlots(tenant_id, stream, size=len(slots.keys), ttl=1)
                if helper.take():  # a free slot: one more process joins (it takes its own slot)
                    helper.release()
                    fan_out()
            report.add(
                send_claimed(tenant_id=tenant_id, stream=stream, worker=worker, messages=messages, deps=deps)
            )
            if time.monotonic() >= deadline:
                report.more = True
                return report
    except OUTAGE_ERRORS:
        # PostgreSQL or Redis failed mid-drain: free what is ours as soon as the database answers, then
        # ask for another drain (more=True) instead of leaving the rows claimed for a whole lease.
        if not drain_recover(tenant_id=tenant_id, worker=worker, wait_seconds=deps.engine.recovery_seconds):
            raise
        report.more = True
        return report
    finally:
        heartbeat.stop()
        slots.release()


def _take_back_dead_claims(tenant_id: uuid.UUID, grace: float) -> None:
    """A killed worker's rows move on with the next drain of the tenant, not only at the next sweep."""
    with tenant_context(tenant_id), connection.cursor() as cursor:
        claims_take_back(cursor, tenant_id=tenant_id, now=timezone.now(), grace=grace)
