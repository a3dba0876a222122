"""Search across live and archived records, and audited retrieval of an archived record.

Search covers every category's live records (through the category's own SQL) and the archive, by
contact, date, source (campaign) and category; it needs a reason, returns references only and is
audited. Retrieving an archived record decrypts it inside `phi_access`, plus a retrieval event.
"""

from __future__ import annotations

import base64
import datetime
import uuid
from dataclasses import dataclass

from django.db import connection, transaction

from audit import services as audit
from audit.phi import phi_access
from delivery.models import Message, PortalMessage
from delivery.outbox import message_content
from delivery.portal.services import portal_content_read, reply_text_read
from healthmail.actors import Actor
from healthmail.crypto.errors import DecryptionError
from healthmail.errors import ApplicationError, NotFound
from healthmail.tenants.context import tenant_context

from ..models import ArchivedRecord

SEARCH_LIMIT = 200
DESTROYED = "destroyed"


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
    from .. import holds
    from ..registry import all_categories

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
            contacts=[filters.contact_id] if filters.contact_id else None,
        )
    return hits[:SEARCH_LIMIT]


@transaction.atomic
def archive_retrieve(*, tenant, actor: Actor, archived_id, reason: str) -> dict:
    """Open one archived record for a person: an audited PHI read plus a retrieval event.
    Returns the entry, its snapshot, its content and (portal copies) its replies."""
    if not reason.strip():
        raise ApplicationError("Give the reason for opening this record; it is recorded.", code="reason")
    with tenant_context(tenant):
        entry = ArchivedRecord.objects.filter(tenant=tenant, pk=archived_id).first()
        if entry is None:
            raise NotFound("No such archived record.")
        with phi_access(
            actor=actor, tenant=tenant, objects=[entry], fields=["snapshot", "content"], purpose=reason
        ):
            opened = archived_open(entry)
        audit.record(
            actor=actor,
            action="retention.archive_retrieve",
            target=entry,
            tenant=tenant,
            reason=reason[:500],
            details={"category": entry.category, "record_id": entry.record_id},
            contacts=[entry.contact_id],
        )
    return {"entry": entry, **opened}


def archived_open(entry: ArchivedRecord) -> dict:
    """The decrypted parts of an archived record: call inside `phi_access` when serving a person.
    Content or replies whose key was shredded read "destroyed"."""
    snapshot = dict(entry.snapshot)
    replies = [_reply_open(entry, reply) for reply in snapshot.pop("replies", [])]
    if entry.category == "portal_messages":
        snapshot["replies"] = len(replies)
    return {"snapshot": snapshot, "content": _content_open(entry), "replies": replies}


def _content_open(entry: ArchivedRecord):
    if entry.content is None:
        return None
    if entry.content_key_id is None:
        return DESTROYED
    record_id, sealed = uuid.UUID(entry.record_id), bytes(entry.content)
    try:
        if entry.category == "portal_messages":
            # Sealed for the portal row (bound to its id): open it the portal's way.
            return portal_content_read(
                PortalMessage(
                    pk=record_id,
                    tenant_id=entry.tenant_id,
                    content=sealed,
                    content_key_id=entry.content_key_id,
                )
            )
        # Sealed for the outbox row (message content; message metadata archived before content was
        # a category of its own in the archive): open it the outbox's way.
        message = Message(pk=record_id, tenant_id=entry.tenant_id)
        message.content, message.content_key_id = sealed, entry.content_key_id
        return message_content(message)
    except DecryptionError:
        return DESTROYED


def _reply_open(entry: ArchivedRecord, reply: dict) -> dict:

    text = DESTROYED
    if reply.get("key"):
        try:
            text = reply_text_read(
                tenant_id=entry.tenant_id,
                reply_id=uuid.UUID(reply["id"]),
                key_id=uuid.UUID(reply["key"]),
                body=base64.b64decode(reply["body"]),
            )
        except DecryptionError:
            text = DESTROYED
    return {"created_at": reply["created_at"], "staff_read_at": reply["staff_read_at"], "text": text}
