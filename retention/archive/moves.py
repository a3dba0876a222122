"""What moves into the archive, per archivable category. Each function runs inside the archive
batch's transaction, on records that were locked, found past their archive age and not held.

An archived record's columns (clock, contact, source) are computed by its category's own SQL, the
same SQL disposal and holds read, so a hold decides the same way before and after the move.
Ciphertexts move as they are: content stays sealed under its object key (bound to the live row's
id, opened the owning app's way), and values sealed with the tenant data key are sealed again, with
the same key, into the snapshot (bound to the archive row). No key is created or deleted here, so
disposal of an archived record still crypto-shreds it.

A message (message metadata) takes along what cannot outlive its row: its content, its portal copy
(only once closed, expired or recalled: the category's archive condition makes the message wait)
and its tracking events. Each becomes an archived record of its own category, with its own clock
and policy. If any of them is held, the message stays where it is.
"""

from __future__ import annotations

import base64
import datetime
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection

from delivery.models import (
    DeliveryReport,
    EngagementEvent,
    Message,
    MessageAttempt,
    PortalCode,
    PortalLink,
    PortalMessage,
    PortalReply,
    TrackedUrl,
)

from ..models import ArchivedRecord
from ..registry import Category, category_get


@dataclass(frozen=True)
class LiveRef:
    """A live record's hold columns, and whether an active hold covers it."""

    record_id: str
    clock_at: datetime.datetime
    contact_id: uuid.UUID | None
    source_ref: str | None
    held: bool


def _iso(value):
    return value.isoformat() if isinstance(value, datetime.datetime | datetime.date) else value


def _text(value) -> str | None:
    return None if value is None else str(value)


def live_refs(key: str, tenant_id, condition: str, params: dict, active: Sequence) -> dict[str, LiveRef]:
    """Records of category `key` matching `condition` (SQL over `r`, named parameters), by id."""
    from .. import holds

    source = category_get(key).source
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT * FROM ({source.select_sql()} AND {condition}) q",  # noqa: S608 - registry SQL
            {"tenant": tenant_id, **params},
        )
        rows = cursor.fetchall()
    refs = {}
    for row in rows:
        ref = holds.RecordRef(key, *row)
        refs[row[0]] = LiveRef(row[0], row[1], row[2], row[3], any(holds.hold_covers(a, ref) for a in active))
    return refs


def _ids_condition(category: Category) -> str:
    source = category.source
    return f"r.{source.pk_column} = ANY(%(ids)s::{source.pk_cast}[])"


def _entry(key: str, tenant_id, ref: LiveRef, snapshot: dict, **sealed) -> ArchivedRecord:
    return ArchivedRecord(
        tenant_id=tenant_id,
        category=key,
        record_id=ref.record_id,
        clock_at=ref.clock_at,
        contact_id=ref.contact_id,
        source_ref=ref.source_ref,
        snapshot=snapshot,
        **sealed,
    )


def _group(rows: Iterable[dict], key: str) -> dict:
    grouped: dict = {}
    for row in rows:
        grouped.setdefault(row.pop(key), []).append(row)
    return grouped


# --- message content ----------------------------------------------------------------------------------


def _content_entry(tenant_id, ref: LiveRef, row: dict) -> ArchivedRecord:
    snapshot = {"model": "delivery.Message", "part": "content", "message_id": row["message_id"]}
    return _entry(
        "message_content",
        tenant_id,
        ref,
        snapshot,
        content=row["content"],
        content_key_id=row["content_key_id"],
    )


def archive_message_content(category, tenant_id, record_ids, active) -> dict[str, list[str]]:
    """The content leaves the outbox row with its key; the row (metadata) stays live."""

    refs = live_refs(category.key, tenant_id, _ids_condition(category), {"ids": record_ids}, active)
    movable = [rid for rid, ref in refs.items() if not ref.held]
    rows = list(
        Message.objects.filter(tenant_id=tenant_id, pk__in=movable, content_key__isnull=False).values(
            "id", "message_id", "content", "content_key_id"
        )
    )
    ArchivedRecord.objects.bulk_create(_content_entry(tenant_id, refs[str(r["id"])], r) for r in rows)
    moved = [r["id"] for r in rows]
    Message.objects.filter(tenant_id=tenant_id, pk__in=moved).update(content=None, content_key=None)
    return {category.key: [str(pk) for pk in moved]}


# --- message metadata (with what cannot outlive the row) ----------------------------------------------

MESSAGE_FIELDS = (
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
    "path",
    "evidence",
    "created_at",
    "finished_at",
)


def _message_snapshot(message, attempts: list, reports: list) -> dict:
    return {
        "model": "delivery.Message",
        "to_address": message.to_address,  # system read (not serving a person): unguarded
        **{name: _iso(getattr(message, name)) for name in MESSAGE_FIELDS},
        "contact_id": _text(message.contact_id),
        "sender_domain_id": _text(message.sender_domain_id),
        "attempt_log": [{k: _iso(v) for k, v in a.items()} for a in attempts],
        "reports": [{k: _iso(v) for k, v in r.items()} for r in reports],
    }


def archive_messages(category, tenant_id, record_ids, active) -> dict[str, list[str]]:
    """Outbox rows with their attempts and reports, plus their content, closed portal copies and
    tracking events as records of their own categories."""

    by_id, by_message = _ids_condition(category), "r.message_id = ANY(%(ids)s::uuid[])"
    params = {"ids": record_ids}
    refs = live_refs(category.key, tenant_id, by_id, params, active)
    content_refs = live_refs("message_content", tenant_id, by_id, params, active)
    portal_refs = live_refs("portal_messages", tenant_id, by_message, params, active)
    event_refs = live_refs("tracking_events", tenant_id, by_message, params, active)
    portals = list(PortalMessage.objects.filter(tenant_id=tenant_id, message_id__in=record_ids))
    events = list(EngagementEvent.objects.filter(tenant_id=tenant_id, message_id__in=record_ids))
    held_parts = [
        *(rid for rid, ref in content_refs.items() if ref.held),
        *(str(p.message_id) for p in portals if portal_refs[str(p.pk)].held),
        *(str(e.message_id) for e in events if event_refs[str(e.pk)].held),
    ]
    movable = {rid for rid, ref in refs.items() if not ref.held} - set(held_parts)
    messages = list(Message.objects.filter(tenant_id=tenant_id, pk__in=movable))
    attempts = _group(
        MessageAttempt.objects.filter(tenant_id=tenant_id, message__in=messages).values(
            "message_id", "started_at", "finished_at", "outcome", "smtp_code", "detail", "mx_host", "evidence"
        ),
        "message_id",
    )
    reports = _group(
        DeliveryReport.objects.filter(tenant_id=tenant_id, message__in=messages).values(
            "message_id", "kind", "action", "status", "received_at"
        ),
        "message_id",
    )
    entries, moved = [], {}
    for message in messages:
        rid = str(message.pk)
        snapshot = _message_snapshot(message, attempts.get(message.pk, []), reports.get(message.pk, []))
        entries.append(_entry(category.key, tenant_id, refs[rid], snapshot))
        if rid in content_refs and message.content_key_id is not None:
            row = {f: getattr(message, f) for f in ("message_id", "content", "content_key_id")}
            entries.append(_content_entry(tenant_id, content_refs[rid], row))
            moved.setdefault("message_content", []).append(rid)
    moving = {m.pk for m in messages}
    portals = [p for p in portals if p.message_id in moving]
    events = [e for e in events if e.message_id in moving]
    entries += portal_entries(tenant_id, portals, portal_refs)
    entries += event_entries(tenant_id, events, event_refs)
    ArchivedRecord.objects.bulk_create(entries)
    EngagementEvent.objects.filter(tenant_id=tenant_id, pk__in=[e.pk for e in events]).delete()
    # The collector removes attempts, reports and the portal copy with its links, codes and replies;
    # the object keys stay (the archive rows refer to them now).
    Message.objects.filter(tenant_id=tenant_id, pk__in=moving).delete()
    moved[category.key] = [str(m.pk) for m in messages]
    moved["portal_messages"] = [str(p.pk) for p in portals]
    moved["tracking_events"] = [str(e.pk) for e in events]
    return {key: ids for key, ids in moved.items() if ids}


# --- portal messages ----------------------------------------------------------------------------------

PORTAL_FIELDS = (
    "created_at",
    "expires_at",
    "recalled_at",
    "recalled_by",
    "first_read_at",
    "last_read_at",
    "read_count",
)


def portal_entries(tenant_id, portals: list, refs: dict[str, LiveRef]) -> list[ArchivedRecord]:
    """One archived record per portal copy: its read evidence, the times its links were issued and its
    replies (each still sealed under its own key, kept in `part_key_ids`). Token and code hashes and
    the passphrase hash are credentials for a closed copy: they are not kept."""

    ids = [p.pk for p in portals]
    links = _group(
        PortalLink.objects.filter(tenant_id=tenant_id, portal_message_id__in=ids)
        .order_by("created_at")
        .values("portal_message_id", "created_at"),
        "portal_message_id",
    )
    codes = _group(
        PortalCode.objects.filter(tenant_id=tenant_id, portal_message_id__in=ids).values(
            "portal_message_id", "created_at", "used_at"
        ),
        "portal_message_id",
    )
    replies = _group(
        PortalReply.objects.filter(tenant_id=tenant_id, portal_message_id__in=ids)
        .order_by("created_at")
        .values("portal_message_id", "id", "created_at", "staff_read_at", "content_key_id", "body"),
        "portal_message_id",
    )
    entries = []
    for portal in portals:
        own_replies = replies.get(portal.pk, [])
        snapshot = {
            "model": "delivery.PortalMessage",
            "message": str(portal.message_id),
            **{name: _iso(getattr(portal, name)) for name in PORTAL_FIELDS},
            "links_issued": [_iso(link["created_at"]) for link in links.get(portal.pk, [])],
            "codes_sent": len(codes.get(portal.pk, [])),
            "replies": [
                {
                    "id": str(reply["id"]),
                    "created_at": _iso(reply["created_at"]),
                    "staff_read_at": _iso(reply["staff_read_at"]),
                    "key": _text(reply["content_key_id"]),
                    "body": base64.b64encode(bytes(reply["body"])).decode(),  # ciphertext
                }
                for reply in own_replies
            ],
        }
        entries.append(
            _entry(
                "portal_messages",
                tenant_id,
                refs[str(portal.pk)],
                snapshot,
                content=portal.content,
                content_key_id=portal.content_key_id,
                part_key_ids=[r["content_key_id"] for r in own_replies if r["content_key_id"]],
            )
        )
    return entries


def _move_rows(model, entries, category, tenant_id, record_ids, active) -> dict[str, list[str]]:
    """Rows of one model that are due and not held: archive entries written, live rows deleted."""
    refs = live_refs(category.key, tenant_id, _ids_condition(category), {"ids": record_ids}, active)
    movable = [rid for rid, ref in refs.items() if not ref.held]
    rows = list(model.objects.filter(tenant_id=tenant_id, pk__in=movable))
    ArchivedRecord.objects.bulk_create(entries(tenant_id, rows, refs))
    model.objects.filter(tenant_id=tenant_id, pk__in=[row.pk for row in rows]).delete()
    return {category.key: [str(row.pk) for row in rows]}


def archive_portal_messages(category, tenant_id, record_ids, active) -> dict[str, list[str]]:
    """Closed portal copies (the category's archive condition) leave; their message stays live."""

    return _move_rows(PortalMessage, portal_entries, category, tenant_id, record_ids, active)


# --- tracking events ----------------------------------------------------------------------------------

EVENT_FIELDS = ("kind", "label", "source_type", "source_id", "variant", "occurred_at", "is_bot", "bot_reason")


def event_entries(tenant_id, events: list, refs: dict[str, LiveRef]) -> list[ArchivedRecord]:

    urls = dict(
        TrackedUrl.objects.filter(
            tenant_id=tenant_id, pk__in={e.link_id for e in events if e.link_id}
        ).values_list("pk", "url")
    )
    return [
        _entry(
            "tracking_events",
            tenant_id,
            refs[str(event.pk)],
            {
                "model": "delivery.EngagementEvent",
                **{name: _iso(getattr(event, name)) for name in EVENT_FIELDS},
                "link": urls.get(event.link_id),
                "message": _text(event.message_id),
                "contact": _text(event.contact_id),
            },
        )
        for event in events
    ]


def archive_tracking_events(category, tenant_id, record_ids, active) -> dict[str, list[str]]:

    return _move_rows(EngagementEvent, event_entries, category, tenant_id, record_ids, active)
