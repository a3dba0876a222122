"""Claiming due outbox rows: FOR UPDATE SKIP LOCKED inside the tenant's context, then a lease.

The claim commits before any message is sent, so a second worker never takes the same rows, and a
worker that dies leaves rows whose lease runs out (the sweeper gives them back). The lease is the
only ownership: every later write checks `claimed_by`.

`messages_claim` returns the claimed rows whole (RETURNING m.*), so a drain does not read them again:
what it sends is still decided by the hand-off mark (record._HANDOFF), which sends only the rows this
worker still holds when it is about to hand them to SMTP.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models.base import ModelState
from django.db.models.expressions import Col
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from delivery.models import Message
from healthmail.tenants.context import tenant_context

logger = logging.getLogger(__name__)

# The claim query walks the partial index message_claim (tenant, stream, not_before) of unfinished
# rows: due retries first (by not_before), then fresh rows (NULL not_before sorts last).
#
# The UPDATE finds the rows it locked by their physical address (ctid: a parameterized TID scan, one
# page read a row), not by id. Joined by id, the planner chose how to find them from the outbox's
# statistics, and when those were taken before a launch filled the table (the tenant "has a handful of
# rows") it scanned the tenant's rows once per claimed row until it met that row: in the delivery
# benchmark 75 blocks a claimed row instead of 24, and 0.57 ms of PostgreSQL CPU a message instead of
# 0.33 (docs/benchmarks.md), until autovacuum analyzed the table.
# A locked row cannot move: no one else may update it before this statement's transaction ends, and
# VACUUM keeps live row versions where they are. A row updated by another transaction after this
# statement's snapshot was taken is locked at its newest version, which the snapshot cannot see: the
# UPDATE then leaves it alone (it stays due, for the next claim), as SKIP LOCKED would have.
_CLAIM = """
WITH due AS (
    SELECT ctid FROM delivery_message
     WHERE tenant_id = %(tenant)s AND stream = %(stream)s AND state IN ('queued', 'deferred')
       AND NOT held AND (not_before IS NULL OR not_before <= %(now)s)
     ORDER BY not_before
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE delivery_message AS m
   SET state = 'sending', claimed_by = %(worker)s, lease_until = %(lease_until)s, updated_at = %(now)s
  FROM due
 WHERE m.ctid = due.ctid
RETURNING {returning}
"""


def worker_name() -> str:
    """Who holds a claim: host, process and a random part (a restarted process is someone else)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _params(
    tenant_id: uuid.UUID, stream: str, worker: str, limit: int, lease: timedelta, now: datetime | None
) -> dict[str, str | int | datetime]:
    now = now or timezone.now()
    return {
        "tenant": str(tenant_id),
        "stream": stream,
        "now": now,
        "limit": limit,
        "worker": worker,
        "lease_until": now + lease,
    }


def message_claim_batch(
    *,
    tenant_id: uuid.UUID,
    stream: str,
    worker: str,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Claim up to `limit` due rows of one tenant's stream for `worker`; committed on return."""
    params = _params(tenant_id, stream, worker, limit, lease, now)
    with tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(_CLAIM.format(returning="m.id"), params)
        ids = [row[0] for row in cursor.fetchall()]
    _log_claimed(tenant_id, stream, worker, limit, claimed=len(ids))
    return ids


def messages_claim(
    *,
    tenant_id: uuid.UUID,
    stream: str,
    worker: str,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
) -> list[Message]:
    """As message_claim_batch, with the claimed rows as they are after the claim (one statement: the
    drain's round used to read them back by id)."""
    params = _params(tenant_id, stream, worker, limit, lease, now)
    columns = _Rows.columns()
    with tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(_CLAIM.format(returning=columns.returning), params)
        rows = cursor.fetchall()
    if pre_init.has_listeners(Message) or post_init.has_listeners(Message):
        messages = [Message.from_db(DEFAULT_DB_ALIAS, columns.names, columns.converted(v)) for v in rows]
    else:  # what Model.__init__ would do besides sending its signals
        messages = [columns.message(values) for values in rows]
    _log_claimed(tenant_id, stream, worker, limit, claimed=len(messages))
    return messages


class _Rows:
    """Message instances made straight from the claim's rows: every concrete column, converted as a
    queryset converts it (the address stays sealed, the evidence is decoded), set as Model.__init__
    sets it, and marked loaded from the database as Model.from_db marks it. Model.__init__ and the
    raw queryset's per-row bookkeeping were 3.0 of the 25.0 s the four workers' main threads spent
    on a 3,000-message benchmark round (cProfile); messages_claim uses Model.from_db instead while
    anyone listens to the outbox's init signals."""

    _made: _Rows | None = None

    def __init__(self) -> None:
        fields = Message._meta.concrete_fields
        self.returning = ", ".join(f"m.{connection.ops.quote_name(str(f.column))}" for f in fields)
        self.names = tuple(f.attname for f in fields)
        self.converters: list[tuple[int, list[Callable[..., Any]], Col]] = []
        for index, field in enumerate(fields):
            column = field.get_col(Message._meta.db_table)
            found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if found:
                self.converters.append((index, found, column))

    @classmethod
    def columns(cls) -> _Rows:
        if cls._made is None:
            cls._made = cls()
        return cls._made

    def converted(self, values: Sequence[Any]) -> list[Any]:
        row = list(values)
        for index, converters, column in self.converters:
            value = row[index]
            for converter in converters:
                value = converter(value, column, connection)
            row[index] = value
        return row

    def message(self, values: Sequence[Any]) -> Message:
        values = self.converted(values)
        message = Message.__new__(Message)
        state = ModelState()
        state.adding, state.db = False, DEFAULT_DB_ALIAS
        message.__dict__.update(zip(self.names, values, strict=True))
        message._state = state
        return message


def _log_claimed(tenant_id: uuid.UUID, stream: str, worker: str, limit: int, *, claimed: int) -> None:
    """One line per batch, `claimed` being the rows the UPDATE returned (an empty claim is a drain's
    last look, not a decision)."""
    if claimed:
        logger.info(
            "delivery: claimed",
            extra={
                "tenant_id": str(tenant_id),
                "stream": stream,
                "claimed": claimed,
                "limit": limit,
                "worker": worker,
            },
        )
