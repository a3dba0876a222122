"""Writing what happened: the message rows (only those this worker still holds), one attempt row per
try, and what a 5xx means for the recipient and the sender (delivery/inbound/feedback.py)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from django.db import connection
from django.utils import timezone

from delivery.inbound.classify import Category, Verdict
from delivery.inbound.feedback import feedback_apply
from delivery.models import Message
from delivery.smtp.outcomes import Outcome
from delivery.webhooks.services import webhooks_notify_states
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context

logger = logging.getLogger(__name__)
State = Message.State
SYSTEM = Actor.system("delivery")
# A server reply may echo the address (PHI): it is cut out before a reply is kept anywhere.
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")


_HANDOFF = """
UPDATE delivery_message SET handoff_at = %(now)s, lease_until = %(lease_until)s
 WHERE id = ANY(%(ids)s::uuid[]) AND claimed_by = %(worker)s AND state = 'sending'
RETURNING id
"""


def scrub(text: str) -> str:
    return _ADDRESS.sub("[address]", text)[:300]


class VerdictRow(TypedDict):
    category: str
    status: str
    cause: str


class SettleRow(TypedDict):
    """One message's outcome as _SETTLE reads it. Built here with datetimes; replayed from the journal
    (JSON) the times are ISO text."""

    id: str
    state: str
    reason: str
    attempts: int
    ambiguous: int
    not_before: datetime | str | None
    evidence: dict[str, object] | None
    finished_at: datetime | str | None
    first_attempt_at: datetime | str | None
    path: str
    verdict: VerdictRow | None


class AttemptRow(TypedDict):
    """One delivery_messageattempt row as _ATTEMPTS reads it (times: as in SettleRow)."""

    message_id: uuid.UUID | str
    started_at: datetime | str
    finished_at: datetime | str
    outcome: str
    smtp_code: int | None
    detail: str
    mx_host: str
    evidence: dict[str, object]
    path: str


@dataclass
class Settle:
    """What becomes of one claimed message after this round."""

    message: Message
    state: str
    reason: str = ""
    not_before: datetime | None = None
    evidence: dict[str, object] = field(default_factory=dict)
    verdict: Verdict | None = None  # set on a 5xx: what it means for the recipient and the sender


def attempt_row(
    message: Message, outcome: Outcome, *, path: str, started_at: datetime, now: datetime
) -> AttemptRow:
    """One delivery_messageattempt row (the columns _ATTEMPTS reads; a plain dict is cheaper to build
    than a model instance that would only be turned into one)."""
    detail = outcome.reason or f"{outcome.code or ''} {outcome.reply}".strip()
    return {
        "message_id": message.pk,
        "started_at": started_at,
        "finished_at": now,
        "outcome": str(outcome.status),
        "smtp_code": outcome.code,
        "detail": scrub(detail),
        "mx_host": outcome.evidence.mx if outcome.evidence else "",
        "evidence": outcome.evidence.as_dict() if outcome.evidence else {},
        "path": path,
    }


def mark_handoff(
    *, tenant_id: uuid.UUID, worker: str, ids: Sequence[uuid.UUID], lease_until: datetime
) -> set[uuid.UUID]:
    """Commit "about to hand these to SMTP" and renew the lease; returns the ids still ours. A row not
    returned was taken back by the sweeper and must not be sent by this worker."""
    if not ids:
        return set()
    with tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(
            _HANDOFF,
            {
                "now": timezone.now(),
                "lease_until": lease_until,
                "ids": "{" + ",".join(str(i) for i in ids) + "}",
                "worker": worker,
            },
        )
        return {row[0] for row in cursor.fetchall()}


# One statement for the whole round (Django's bulk_update builds a CASE per field and row, which cost
# more than the SMTP phase). The WHERE clause says whose word counts: this worker's outcome is written
# unless the row is final, holds a later attempt, or another worker has since handed it to SMTP (then
# that worker records). So an outcome recorded late (after a database outage, from the journal, or
# after the sweeper took the claim back) still lands, and a row re-claimed but not yet sent is not
# sent again: its new holder's hand-off check no longer finds it. RETURNING says which rows were written.
_SETTLE = """
UPDATE delivery_message AS m
   SET state = v.state, state_reason = v.reason, attempts = v.attempts, ambiguous_sends = v.ambiguous,
       not_before = v.not_before, claimed_by = '', lease_until = NULL, handoff_at = NULL,
       evidence = COALESCE(v.evidence, m.evidence), finished_at = v.finished_at,
       first_attempt_at = v.first_attempt_at, path = v.path, updated_at = %(now)s
  FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(
       id uuid, state text, reason text, attempts int, ambiguous int, not_before timestamptz,
       evidence jsonb, finished_at timestamptz, first_attempt_at timestamptz, path text)
 WHERE m.id = v.id AND m.state IN ('sending', 'queued', 'deferred') AND m.attempts <= v.attempts
   AND (m.claimed_by = %(worker)s OR m.handoff_at IS NULL)
RETURNING m.id
"""
# The attempt rows of a round, the same way (one JSON document instead of a parameter per value). A
# journal replayed late may name a message that is gone since (disposed of): its attempt goes with it.
_ATTEMPTS = """
INSERT INTO delivery_messageattempt
       (tenant_id, message_id, started_at, finished_at, outcome, smtp_code, detail, mx_host, evidence, path)
SELECT %(tenant)s, a.message_id, a.started_at, a.finished_at, a.outcome, a.smtp_code, a.detail, a.mx_host,
       a.evidence, a.path
  FROM jsonb_to_recordset(%(rows)s::jsonb) AS a(
       message_id uuid, started_at timestamptz, finished_at timestamptz, outcome text, smtp_code int,
       detail text, mx_host text, evidence jsonb, path text)
 WHERE EXISTS (SELECT 1 FROM delivery_message m WHERE m.id = a.message_id)
"""


def _json(rows: Sequence[SettleRow] | Sequence[AttemptRow]) -> str:
    return json.dumps(rows, default=str)


def _verdict_row(verdict: Verdict) -> VerdictRow:
    return {"category": verdict.category.value, "status": verdict.status, "cause": verdict.cause}


def settle_rows(settles: Sequence[Settle]) -> list[SettleRow]:
    """The round's outcomes as plain JSON-ready rows (what _SETTLE reads, and what the journal keeps)."""
    now = timezone.now()
    final = Message.FINAL_STATES
    return [
        {
            "id": str(s.message.pk),
            "state": s.state,
            "reason": s.reason[:300],
            "attempts": s.message.attempts,
            "ambiguous": s.message.ambiguous_sends,
            "not_before": s.not_before,
            "evidence": s.evidence or None,
            "finished_at": now if s.state in final else None,
            "first_attempt_at": s.message.first_attempt_at,
            "path": s.message.path,
            "verdict": _verdict_row(s.verdict) if s.verdict is not None else None,
        }
        for s in settles
    ]


def settle(
    *, tenant_id: uuid.UUID, worker: str, settles: Sequence[Settle], attempts: Sequence[AttemptRow]
) -> int:
    """Write the outcomes of one round in one transaction; returns how many rows were written."""
    rows = settle_rows(settles)
    return settle_recorded(
        tenant_id=tenant_id,
        worker=worker,
        rows=rows,
        attempts=attempts,
        messages={s.message.pk: s.message for s in settles},
    )


def settle_recorded(
    *,
    tenant_id: uuid.UUID,
    worker: str,
    rows: Sequence[SettleRow],
    attempts: Sequence[AttemptRow],
    messages: dict[uuid.UUID, Message] | None = None,
) -> int:
    """Write rows built by `settle_rows` (now, or replayed from the journal: then `messages` is None
    and the rows written are read back for the feedback and webhook steps)."""
    with tenant_context(tenant_id):
        owned: set[uuid.UUID] = set()
        if rows:
            with connection.cursor() as cursor:
                cursor.execute(_SETTLE, {"now": timezone.now(), "worker": worker, "rows": _json(rows)})
                owned = {row[0] for row in cursor.fetchall()}
        for row in rows:
            if uuid.UUID(row["id"]) not in owned:
                # Final already, or another worker handed it to SMTP since: that worker records it.
                logger.warning("delivery: outcome superseded", extra={"message_id": row["id"]})
        if attempts:
            with connection.cursor() as cursor:
                cursor.execute(_ATTEMPTS, {"tenant": tenant_id, "rows": _json(list(attempts))})
        if messages is None:
            messages = {m.pk: m for m in Message.objects.filter(pk__in=owned)}
        written = [(messages[uuid.UUID(row["id"])], row) for row in rows if uuid.UUID(row["id"]) in owned]
        retried = [row for _, row in written if row["state"] in _RETRY_STATES]
        if retried:  # rare: the reply codes are looked up only then, not on every round
            codes = {str(attempt["message_id"]): attempt["smtp_code"] for attempt in attempts}
            for row in retried:
                _log_retry(row, codes.get(row["id"]))
        for message, row in written:
            found = row["verdict"]
            if found is not None:
                # The one table decides: suppress a gone recipient, count a soft one, and never touch
                # the patient for a sender-side refusal (delivery/inbound/classify.py).
                verdict = Verdict(Category(found["category"]), status=found["status"], cause=found["cause"])
                feedback_apply(message=message, verdict=verdict, matched_by="smtp", update_state=False)
        # In the same transaction as the state change: the events commit with it or not at all.
        webhooks_notify_states(
            tenant_id=tenant_id, changes=[(message, row["state"], row["reason"]) for message, row in written]
        )
    return len(owned)


_RETRY_STATES = frozenset({State.DEFERRED, State.EXPIRED})


def _log_retry(row: SettleRow, smtp_code: int | None) -> None:
    """A deferral or an expiry (retries given up, or too old to send) as recorded: the message by id,
    its attempt count, the next try and the SMTP reply's class; never the address or the reply's text."""
    deferred = row["state"] == State.DEFERRED
    when = row["not_before"]
    logger.log(
        logging.INFO if deferred else logging.WARNING,
        "delivery: deferred" if deferred else "delivery: expired",
        extra={
            "message_id": row["id"],
            "attempt": row["attempts"],
            "next_try": when.isoformat() if isinstance(when, datetime) else when,  # ISO text when replayed
            "smtp_class": f"{smtp_code // 100}xx" if smtp_code else None,
        },
    )


def journal_record(document: dict[str, Any]) -> None:
    """Write one journal entry (delivery/engine/journal.py) to PostgreSQL."""
    settle_recorded(
        tenant_id=uuid.UUID(document["tenant_id"]),
        worker=document["worker"],
        rows=document["rows"],
        attempts=document["attempts"],
    )
