"""The archive: records past their category's archive age leave the live tables for ArchivedRecord,
sealed with the tenant's data key like before (the content keeps its own object key, so disposal
still crypto-shreds it). Held records are not moved (a hold freezes them where they are).

Search covers live and archived records by contact, date, source (campaign) and category; it needs
a reason and is audited. Retrieving an archived record decrypts it inside `phi_access`.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from audit import services as audit
from audit.actors import Actor
from audit.phi import phi_access
from healthmail.errors import ApplicationError, NotFound
from healthmail.tenants.context import tenant_context

from .models import ArchivedRecord

ARCHIVE_BATCH = 500
SEARCH_LIMIT = 200


def _iso(value):
    return value.isoformat() if isinstance(value, datetime.datetime | datetime.date) else value


def archive_messages(category, tenant_id: uuid.UUID, record_ids: list[str]) -> list[str]:
    """Move outbox rows (with attempts and reports) into the archive. Messages with a portal copy stay
    live: the portal copy has its own category and clock."""
    from delivery.models import DeliveryReport, Message, MessageAttempt, PortalMessage

    with_portal = set(
        PortalMessage.objects.filter(tenant_id=tenant_id, message_id__in=record_ids).values_list(
            "message_id", flat=True
        )
    )
    messages = list(
        Message.objects.filter(tenant_id=tenant_id, pk__in=record_ids).exclude(pk__in=with_portal)
    )
    attempts: dict = {}
    for attempt in MessageAttempt.objects.filter(tenant_id=tenant_id, message__in=messages).values(
        "message_id", "started_at", "finished_at", "outcome", "smtp_code", "detail", "mx_host", "evidence"
    ):
        attempts.setdefault(attempt.pop("message_id"), []).append({k: _iso(v) for k, v in attempt.items()})
    reports: dict = {}
    for report in DeliveryReport.objects.filter(tenant_id=tenant_id, message__in=messages).values(
        "message_id", "kind", "action", "status", "received_at"
    ):
        reports.setdefault(report.pop("message_id"), []).append({k: _iso(v) for k, v in report.items()})
    archived = []
    for message in messages:
        snapshot = {
            "model": "delivery.Message",
            "to_address": message.to_address,  # system read (not serving a person): unguarded
            **{
                name: _iso(getattr(message, name))
                for name in (
                    "stream",
                    "source_type",
                    "source_id",
                    "variant",
                    "to_domain",
                    "purpose",
                    "topic",
                    "uses_phi",
                    "encryption_policy",
                    "message_id",
                    "state",
                    "state_reason",
                    "attempts",
                    "evidence",
                    "created_at",
                    "finished_at",
                )
            },
            "contact_id": str(message.contact_id) if message.contact_id else None,
            "sender_domain_id": str(message.sender_domain_id) if message.sender_domain_id else None,
            "attempt_log": attempts.get(message.pk, []),
            "reports": reports.get(message.pk, []),
        }
        archived.append(
            ArchivedRecord(
                tenant_id=tenant_id,
                category=category.key,
                record_id=str(message.pk),
                clock_at=message.created_at,
                contact_id=message.contact_id,
                source_ref=f"{message.source_type}:{message.source_id}" if message.source_id else None,
                snapshot=snapshot,
                content_key_id=message.content_key_id,
                content=message.content,
            )
        )
    ArchivedRecord.objects.bulk_create(archived)
    # The content key moved with the content: delete the rows without shredding it.
    Message.objects.filter(tenant_id=tenant_id, pk__in=[m.pk for m in messages]).delete()
    return [str(m.pk) for m in messages]


def archive_due(*, tenant, as_of: datetime.datetime | None = None, batch: int = ARCHIVE_BATCH) -> int:
    """Move every record past its archive age (batches of one transaction each). Returns records moved."""
    from . import holds
    from .policies import policies_ensure_defaults, policy_in_force
    from .registry import all_categories

    as_of = as_of or timezone.now()
    policies_ensure_defaults(tenant=tenant)
    moved = 0
    for category in all_categories():
        if category.archive is None:
            continue
        policy = policy_in_force(tenant=tenant, category=category.key, at=as_of)
        if policy is None or policy.archive_after_days is None:
            continue
        cut = as_of - datetime.timedelta(days=policy.archive_after_days)
        while (count := _archive_batch(tenant, category, cut, batch, holds)) > 0:
            moved += count
            if count < batch:
                break
    return moved


def _archive_batch(tenant, category, cut, batch: int, holds) -> int:
    source = category.source
    with tenant_context(tenant), connection.cursor() as cursor:
        holds.holds_lock_shared(tenant.pk)
        active = holds.active_holds(tenant=tenant)
        held_sql, held_params = holds.holds_sql(active, alias="q")
        cursor.execute(*_archive_query(category, cut, batch, tenant, held_sql, held_params))
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return 0
        cursor.execute(source.lock_sql(), [tenant.pk, ids])
        moved = category.archive(category, tenant.pk, ids)
        audit.record(
            actor=Actor.system("retention.archive"),
            action="retention.archive",
            tenant=tenant,
            details={"category": category.key, "count": len(moved)},
        )
        # Rows left live on purpose (a portal copy) would be found again: stop when nothing moved.
        return len(moved)


def _archive_query(category, cut, batch, tenant, held_sql, held_params) -> tuple[str, list]:
    """The due-for-archive query with positional parameters (the hold condition needs them)."""
    source = category.source
    select = source.select_sql().replace("%(tenant)s", "%s")
    return (
        f"SELECT q.record_id FROM (SELECT %s::text AS category, s.* FROM ({select}"  # noqa: S608
        f" AND {source.clock} < %s) s) q WHERE NOT {held_sql} ORDER BY q.clock_at LIMIT %s",
        [category.key, tenant.pk, cut, *held_params, batch],
    )


# --- Search and retrieval -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchFilter:
    contact_id: uuid.UUID | None = None
    source: str = ""
    categories: tuple[str, ...] = ()
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None

    def as_details(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else str(v)) for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class SearchHit:
    category: str
    record_id: str
    clock_at: datetime.datetime
    contact_id: uuid.UUID | None
    source_ref: str | None
    archived_id: uuid.UUID | None  # set for archived records
    held: bool


def _conditions(filters: SearchFilter, alias: str) -> tuple[list[str], list]:
    parts, params = [], []
    if filters.contact_id:
        parts.append(f"{alias}.contact_id = %s")
        params.append(filters.contact_id)
    if filters.source:
        parts.append(f"{alias}.source_ref = %s")
        params.append(filters.source)
    if filters.date_from:
        parts.append(f"{alias}.clock_at >= %s")
        params.append(datetime.datetime.combine(filters.date_from, datetime.time.min, tzinfo=datetime.UTC))
    if filters.date_to:
        parts.append(f"{alias}.clock_at < %s")
        params.append(
            datetime.datetime.combine(
                filters.date_to + datetime.timedelta(days=1), datetime.time.min, tzinfo=datetime.UTC
            )
        )
    return parts, params


def record_search(*, tenant, actor: Actor, reason: str, filters: SearchFilter) -> list[SearchHit]:
    """Live and archived records matching the filters (references only), newest first."""
    from . import holds
    from .registry import all_categories

    if not reason.strip():
        raise ApplicationError("Give the reason for this search; it is recorded.", code="reason")
    if not (filters.contact_id or filters.source or filters.date_from or filters.date_to):
        raise ApplicationError("Search by contact, campaign/source or a date range.", code="filters")
    categories = [c for c in all_categories() if not filters.categories or c.key in filters.categories]
    active = holds.active_holds(tenant=tenant)
    hits: list[SearchHit] = []
    with tenant_context(tenant), connection.cursor() as cursor:
        for category in categories:
            for source in category.sources:
                parts, params = _conditions(filters, "q")
                where = " AND ".join(parts) or "TRUE"
                select = source.select_sql().replace("%(tenant)s", "%s")
                cursor.execute(
                    f"SELECT * FROM ({select}) q WHERE {where} ORDER BY q.clock_at DESC LIMIT %s",  # noqa: S608
                    [tenant.pk, *params, SEARCH_LIMIT],
                )
                for row in cursor.fetchall():
                    ref = holds.RecordRef(category.key, *row)
                    held = any(holds.hold_covers(a, ref) for a in active)
                    hits.append(SearchHit(category.key, row[0], row[1], row[2], row[3], None, held))
        parts, params = _conditions(filters, "a")
        if filters.categories:
            parts.append("a.category = ANY(%s)")
            params.append(list(filters.categories))
        cursor.execute(
            "SELECT a.category, a.record_id, a.clock_at, a.contact_id, a.source_ref, a.id"  # noqa: S608
            f" FROM retention_archivedrecord a WHERE a.tenant_id = %s AND {' AND '.join(parts) or 'TRUE'}"
            " ORDER BY a.clock_at DESC LIMIT %s",
            [tenant.pk, *params, SEARCH_LIMIT],
        )
        for category, record_id, clock_at, contact_id, source_ref, archived_id in cursor.fetchall():
            ref = holds.RecordRef(category, record_id, clock_at, contact_id, source_ref)
            held = any(holds.hold_covers(a, ref) for a in active)
            hits.append(SearchHit(category, record_id, clock_at, contact_id, source_ref, archived_id, held))
        hits.sort(key=lambda h: h.clock_at, reverse=True)
        audit.record(
            actor=actor,
            action="retention.search",
            tenant=tenant,
            reason=reason[:500],
            details={"filters": filters.as_details(), "results": len(hits)},
        )
    return hits[:SEARCH_LIMIT]


@transaction.atomic
def archive_retrieve(*, tenant, actor: Actor, archived_id, reason: str) -> dict:
    """Open one archived record for a person: an audited PHI read plus a retrieval event."""
    if not reason.strip():
        raise ApplicationError("Give the reason for opening this record; it is recorded.", code="reason")
    with tenant_context(tenant):
        entry = ArchivedRecord.objects.filter(tenant=tenant, pk=archived_id).first()
        if entry is None:
            raise NotFound("No such archived record.")
        with phi_access(
            actor=actor, tenant=tenant, objects=[entry], fields=["snapshot", "content"], purpose=reason
        ):
            snapshot = dict(entry.snapshot)
            content = _archived_content(entry)
        audit.record(
            actor=actor,
            action="retention.archive_retrieve",
            target=entry,
            tenant=tenant,
            reason=reason[:500],
            details={"category": entry.category, "record_id": entry.record_id},
        )
    return {"entry": entry, "snapshot": snapshot, "content": content}


def _archived_content(entry: ArchivedRecord):
    if entry.content is None:
        return None
    if entry.content_key_id is None:
        return "destroyed"
    from delivery.models import Message
    from delivery.outbox import message_content

    # The content was sealed for the outbox row (bound to its id): open it the outbox's way.
    message = Message(pk=uuid.UUID(entry.record_id), tenant_id=entry.tenant_id)
    message.content, message.content_key_id = bytes(entry.content), entry.content_key_id
    return message_content(message)
