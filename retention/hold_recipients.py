"""How a hold on campaigns (sources) reaches people: the recipients of those campaigns.

Contact records, consent and authorization records have no source of their own; a hold naming
sources covers them for every contact who received a message from one of the sources (within the
hold's date range, when it has one). The recipients are computed when a hold is checked, never
frozen: a campaign still sending (scheduled sends, an A/B winner, a journey that keeps enrolling)
gains recipients after the hold is placed, and they are covered as soon as their message exists.
The set never shrinks while the hold is active, because the messages that prove who received the
campaign are held by the same hold (see `evidence_categories`), live or in the archive.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Iterable

from django.db import connection

from contacts.models import Contact
from delivery.models import Message
from healthmail.tenants.context import tenant_context

from .registry import Source, all_categories, expand_groups

_SOURCE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Source)}
MESSAGE_MODEL = "delivery.Message"


def contact_keyed_categories() -> frozenset[str]:
    """Categories whose records belong to a contact but name no source (contacts, consent)."""
    return frozenset(
        c.key
        for c in all_categories()
        if c.sources
        and all(
            s.contact_sql != _SOURCE_DEFAULTS["contact_sql"]
            and s.source_sql == _SOURCE_DEFAULTS["source_sql"]
            for s in c.sources
        )
    )


def evidence_categories() -> frozenset[str]:
    """The categories holding the messages that show who received a source (their hold group)."""
    return frozenset(
        expand_groups([c.key for c in all_categories() if any(s.model == MESSAGE_MODEL for s in c.sources)])
    )


def day_start(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


def date_bounds(hold) -> list[tuple[str, datetime.datetime]]:
    bounds = []
    if hold.date_from:
        bounds.append((">=", day_start(hold.date_from)))
    if hold.date_to:
        bounds.append(("<", day_start(hold.date_to + datetime.timedelta(days=1))))
    return bounds


def recipient_sql(hold, contact: str) -> tuple[str, list]:
    """An SQL condition, true when the contact id expression `contact` received a message from one
    of the hold's sources: a live outbox row or an archived message (in the hold's date range)."""

    from .models import ArchivedRecord

    pairs = [s.split(":", 1) if ":" in s else ("", s) for s in hold.sources]
    bounds = date_bounds(hold)
    live_dates = "".join(f" AND m.created_at {op} %s" for op, _ in bounds)
    archived_dates = "".join(f" AND a.clock_at {op} %s" for op, _ in bounds)
    # The contact column is indexed on both tables: one probe per checked record.
    sql = (
        f"(EXISTS (SELECT 1 FROM {Message._meta.db_table} m WHERE m.tenant_id = %s"  # noqa: S608
        f" AND m.contact_id = {contact} AND (m.source_type, m.source_id) IN"
        f" (SELECT * FROM unnest(%s::text[], %s::text[])){live_dates})"
        f" OR EXISTS (SELECT 1 FROM {ArchivedRecord._meta.db_table} a WHERE a.tenant_id = %s"
        f" AND a.contact_id = {contact} AND a.source_ref = ANY(%s){archived_dates}))"
    )
    params = [
        hold.tenant_id,
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        *(value for _, value in bounds),
        hold.tenant_id,
        list(hold.sources),
        *(value for _, value in bounds),
    ]
    return sql, params


def recipients_among(hold, contact_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these contacts received a message from one of the hold's sources."""
    ids = [str(c) for c in contact_ids]
    if not (hold.sources and ids):
        return set()
    condition, params = recipient_sql(hold, "x.id")
    with tenant_context(hold.tenant_id), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT x.id FROM unnest(%s::uuid[]) x(id) WHERE {condition}",  # noqa: S608
            [ids, *params],
        )
        return {row[0] for row in cursor.fetchall()}


def recipients_of(hold) -> list[uuid.UUID]:
    """Every contact that received a message from one of the hold's sources (live or archived, in
    its date range): the people a campaign hold reaches, for its evidence export."""
    if not hold.sources:
        return []

    condition, params = recipient_sql(hold, "c.id")
    with tenant_context(hold.tenant_id), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.id FROM {Contact._meta.db_table} c WHERE c.tenant_id = %s AND {condition}"  # noqa: S608
            " ORDER BY c.id",
            [hold.tenant_id, *params],
        )
        return [row[0] for row in cursor.fetchall()]
