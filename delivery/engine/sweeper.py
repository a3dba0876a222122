"""The reconciler (beat): the outbox, not the broker, is the queue of record.

For every tenant (row-level security needs each tenant's own context):
- claims whose holder stopped beating (heartbeat.py) go back to the queue: their worker died. So do
  claims whose holder never beat and whose lease ran out. A row that was handed to SMTP may have
  reached the server (RFC 1047), so it is counted in `ambiguous_sends` and resent with the same
  Message-ID;
- queued or deferred rows past `expires_at` expire;
- every stream with due rows and no live claim gets a wake-up task (a lost or flushed broker message
  costs one sweep period, never a message).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from delivery.models import Message, MessageAttempt, Stream
from delivery.webhooks.services import webhooks_notify_states
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .config import EngineSettings
from .heartbeat import heartbeats_forget
from .recovery import journal_record_all

logger = logging.getLogger(__name__)
LOST_HANDOFF = "worker lost during the SMTP hand-off; resent with the same Message-ID"

# A holder silent for the grace is first only suspected (the sweep notes when), since its silence may
# be the database's own: after an outage that cut everyone off, a live holder beats again within a
# second of the database's return. It is dead only when it is still silent a grace after the first
# sighting (heartbeat.py). A holder without a heartbeat row is NULL and its lease decides. The
# suspicion is noted only on rows no one else is writing (SKIP LOCKED: never a wait or a deadlock).
_RECLAIM = """
WITH sighted AS (
    UPDATE delivery_workerheartbeat SET suspected_at = now()
     WHERE worker IN (SELECT worker FROM delivery_workerheartbeat
                       WHERE beat_at < now() - make_interval(secs => %(grace)s)
                         AND (suspected_at IS NULL OR suspected_at < beat_at)
                         FOR UPDATE SKIP LOCKED)
    RETURNING worker
),
holders AS (
    SELECT worker, NOT COALESCE(suspected_at >= beat_at
                                AND suspected_at <= now() - make_interval(secs => %(grace)s), FALSE) AS alive
      FROM delivery_workerheartbeat
),
lost AS (
    SELECT m.id, m.handoff_at IS NOT NULL AS in_flight
      FROM delivery_message AS m LEFT JOIN holders AS h ON h.worker = m.claimed_by
     WHERE m.tenant_id = %(tenant)s AND m.state = 'sending'
       AND (h.alive IS FALSE OR (h.alive IS NULL AND m.lease_until < %(now)s))
       FOR UPDATE OF m SKIP LOCKED
)
UPDATE delivery_message AS m
   SET state = 'queued', claimed_by = '', lease_until = NULL, handoff_at = NULL, updated_at = %(now)s,
       ambiguous_sends = m.ambiguous_sends + lost.in_flight::int,
       attempts = m.attempts + lost.in_flight::int,
       first_attempt_at = CASE WHEN lost.in_flight THEN COALESCE(m.first_attempt_at, %(now)s)
                          ELSE m.first_attempt_at END,
       state_reason = CASE WHEN lost.in_flight THEN %(reason)s ELSE m.state_reason END
  FROM lost
 WHERE m.id = lost.id
RETURNING m.id, lost.in_flight
"""
_EXPIRE = """
UPDATE delivery_message SET state = 'expired', state_reason = 'expired before it could be sent',
       finished_at = %(now)s, updated_at = %(now)s
 WHERE tenant_id = %(tenant)s AND state IN ('queued', 'deferred') AND expires_at <= %(now)s
RETURNING id
"""
_DUE = """
SELECT EXISTS (SELECT 1 FROM delivery_message
                WHERE tenant_id = %(tenant)s AND stream = %(stream)s AND state IN ('queued', 'deferred')
                  AND NOT held AND (not_before IS NULL OR not_before <= %(now)s)),
       EXISTS (SELECT 1 FROM delivery_message
                WHERE tenant_id = %(tenant)s AND stream = %(stream)s AND state = 'sending'
                  AND lease_until >= %(now)s)
"""


class Wake(Protocol):
    def __call__(self, *, tenant_id: uuid.UUID, stream: str) -> None: ...


@dataclass
class SweepReport:
    requeued: int = 0
    ambiguous: int = 0
    expired: int = 0
    woken: list[tuple[uuid.UUID, str]] = field(default_factory=list)


def claims_take_back(
    cursor: CursorWrapper, *, tenant_id: uuid.UUID, now: datetime, grace: float
) -> list[tuple[uuid.UUID, bool]]:
    """Give the claims of dead holders back to the queue (inside the tenant's context); returns
    (id, in_flight) per row. Also called by every drain before it claims (worker.py)."""
    cursor.execute(_RECLAIM, {"tenant": str(tenant_id), "now": now, "reason": LOST_HANDOFF, "grace": grace})
    reclaimed: list[tuple[uuid.UUID, bool]] = cursor.fetchall()
    MessageAttempt.objects.bulk_create(
        MessageAttempt(
            tenant_id=tenant_id,
            message_id=message_id,
            started_at=now,
            finished_at=now,
            outcome="ambiguous",
            detail=LOST_HANDOFF,
        )
        for message_id, in_flight in reclaimed
        if in_flight
    )
    if reclaimed:
        logger.warning(
            "delivery: claims taken back",
            extra={
                "tenant_id": str(tenant_id),
                "reclaimed": len(reclaimed),  # the rows the UPDATE returned
                "ambiguous": sum(1 for _, in_flight in reclaimed if in_flight),  # resent, same Message-ID
            },
        )
    return reclaimed


def _sweep_tenant(tenant_id: uuid.UUID, now: datetime, report: SweepReport, grace: float) -> list[str]:
    params: dict[str, str | datetime] = {"tenant": str(tenant_id), "now": now}
    due: list[str] = []
    with tenant_context(tenant_id), connection.cursor() as cursor:
        reclaimed = claims_take_back(cursor, tenant_id=tenant_id, now=now, grace=grace)
        in_flight = [row[0] for row in reclaimed if row[1]]
        cursor.execute(_EXPIRE, params)
        expired = [row[0] for row in cursor.fetchall()]
        report.expired += len(expired)
        if expired:  # announced in the transaction that expired them
            gone = Message.objects.filter(pk__in=expired)
            webhooks_notify_states(
                tenant_id=tenant_id, changes=[(m, Message.State.EXPIRED, "") for m in gone]
            )
        for stream in Stream.values:
            cursor.execute(_DUE, {**params, "stream": stream})
            has_due, has_live_claim = cursor.fetchone()
            # A live claim means a worker is draining this stream and re-enqueues itself while rows
            # remain; waking another would only pile up tasks. Reclaimed rows always get a wake-up.
            if has_due and (not has_live_claim or reclaimed):
                due.append(stream)
    report.requeued += len(reclaimed)
    report.ambiguous += len(in_flight)
    return due


def delivery_sweep(
    *, now: datetime | None = None, wake: Wake | None = None, tenant_ids: Iterable[uuid.UUID] | None = None
) -> SweepReport:
    """One pass over every tenant (or the given ones)."""
    from delivery import tasks

    # Answers a worker on this host got but could not record are recorded before any claim is taken
    # back: what they say was delivered must not be resent.
    journal_record_all()
    now = now or timezone.now()
    wake = wake or tasks.wake
    report = SweepReport()
    grace = EngineSettings.from_settings().heartbeat_grace
    heartbeats_forget()
    if tenant_ids is None:
        tenant_ids = Tenant.objects.values_list("pk", flat=True)
    for tenant_id in tenant_ids:
        for stream in _sweep_tenant(tenant_id, now, report, grace):
            wake(tenant_id=tenant_id, stream=stream)
            report.woken.append((tenant_id, stream))
    return report
