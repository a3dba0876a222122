"""After a drain fails on a database or Redis error: record what the journal holds and give back the
claims this worker never handed to SMTP, so the work is free again seconds after the service returns,
not when the leases run out (DELIVERY_LEASE_SECONDS).

Rows this worker handed to SMTP whose answer it never got stay claimed: the sweeper takes them back
once the drain has ended and its heartbeat grace has passed (heartbeat.py), and counts them as
ambiguous (RFC 1047). Every answer the worker did get is in the journal, so only those are resent.
"""

from __future__ import annotations

import logging
import time
import uuid

from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from healthmail.tenants.context import tenant_context

from .journal import journal_replay
from .record import journal_record

logger = logging.getLogger(__name__)
DATABASE_ERRORS = (OperationalError, InterfaceError)

_RELEASE = """
UPDATE delivery_message SET state = 'queued', claimed_by = '', lease_until = NULL, updated_at = %(now)s
 WHERE tenant_id = %(tenant)s AND claimed_by = %(worker)s AND state = 'sending' AND handoff_at IS NULL
RETURNING id
"""


def journal_record_all() -> int:
    """Replay this host's journal into PostgreSQL (at the start of every drain and sweep)."""
    return journal_replay(journal_record)


def claims_release(*, tenant_id: uuid.UUID, worker: str) -> int:
    """Give back the rows `worker` claimed and never handed to SMTP (sending them now is no repeat)."""
    with tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(_RELEASE, {"now": timezone.now(), "tenant": str(tenant_id), "worker": worker})
        return len(cursor.fetchall())


def drain_recover(*, tenant_id: uuid.UUID, worker: str, wait_seconds: float) -> bool:
    """Replay the journal and release this worker's unsent claims, retrying each second while the
    database is unreachable, for up to `wait_seconds`. True when done (the stream can be woken)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            journal_record_all()
            released = claims_release(tenant_id=tenant_id, worker=worker)
        except DATABASE_ERRORS:
            connection.close()  # the broken connection is not reused: the next try opens a new one
            if time.monotonic() >= deadline:
                return False
            time.sleep(1)
            continue
        logger.warning(
            "delivery: drain recovered",
            extra={"tenant_id": str(tenant_id), "released": released, "worker": worker},
        )
        return True
