"""The segment-join trigger: a contact enters a journey when it becomes a member of the journey's
segment (the definition frozen into the version when it was saved).

Evaluated incrementally, never by rescanning everyone. Every write path of contact data tells
`contacts.changes` which contacts it changed (consent changes, suppressions and human engagement
reach here through their own registries); in that transaction, and only when the tenant has an
active segment-join journey, one `SegmentCheck` row per changed contact is written and a worker is
woken after commit. The worker takes a batch of checks (deleting them; SKIP LOCKED), compiles each
journey's segment restricted to those contacts (`c.id = ANY(ids)`) and compares the answer with the
journey's `SegmentMember` rows: a contact now inside that was not is inserted and enters (by the
journey's re-entry rule); one no longer inside is deleted (it left); one that stays inside changes
nothing. A worker killed mid-batch rolls back and the checks wait for the next one; a wake-up the
broker loses is found by the sweep.

Segments can depend on the moment (age from the birth year, "last visit within N days",
engagement within N days) and on rows no contact write touches (a referenced segment edited): once
a day each journey reconciles its members with the whole segment, in two set-based statements.
"""

from __future__ import annotations

import datetime
import logging
import uuid
import zoneinfo
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from audit import services as audit
from healthmail.actors import Actor
from healthmail.tenants.context import current_tenant_id, tenant_context
from healthmail.tenants.models import Tenant
from segmentation.dsl import DefinitionError
from segmentation.services import segment_members_among, segment_members_query

from ..models import Journey, SegmentMember
from . import engine

logger = logging.getLogger(__name__)
CHECK_BATCH = 1000
ENTER_BATCH = 5000
SYSTEM = Actor.system("journeys")

_CHECKS_INSERT = """
INSERT INTO journeys_segmentcheck (tenant_id, contact_id, queued_at)
SELECT %s, c, %s FROM unnest(%s::uuid[]) AS c
ON CONFLICT (tenant_id, contact_id) DO NOTHING
"""
_CHECKS_TAKE = """
DELETE FROM journeys_segmentcheck WHERE id IN (
  SELECT id FROM journeys_segmentcheck WHERE tenant_id = %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING contact_id
"""
_MEMBERS_INSERT = """
INSERT INTO journeys_segmentmember (tenant_id, journey_id, contact_id, joined_at)
SELECT %s, %s, c, %s FROM unnest(%s::uuid[]) AS c
ON CONFLICT (tenant_id, journey_id, contact_id) DO NOTHING
RETURNING contact_id
"""


def _segment_journeys(tenant_id) -> list[Journey]:
    return list(
        Journey.objects.filter(
            tenant_id=tenant_id,
            status=Journey.Status.ACTIVE,
            entry_kind="segment",
            live_version__isnull=False,
        ).select_related("live_version", "tenant")
    )


def contacts_changed_receive(tenant_id: uuid.UUID, contact_ids: list[uuid.UUID]) -> None:
    """In the transaction of a change: queue the contacts for a check, if any journey starts on
    joining a segment (otherwise the write costs one indexed lookup)."""
    # Writers call this inside their tenant's context: entering it again would cost five queries.
    scope = nullcontext() if current_tenant_id() == tenant_id else tenant_context(tenant_id)
    with scope:
        if not Journey.objects.filter(
            tenant_id=tenant_id, status=Journey.Status.ACTIVE, entry_kind="segment"
        ).exists():
            return
        with connection.cursor() as cursor:
            cursor.execute(_CHECKS_INSERT, [tenant_id, timezone.now(), [str(c) for c in set(contact_ids)]])
    from .. import tasks  # tasks import the services

    tasks.segment_checks_soon(tenant=tenant_id)


def consent_changes_receive(changes: list[tuple]) -> None:
    """Consent changes (tenant id, contact id, topic id, kind): segments select by consent."""
    by_tenant: dict = {}
    for tenant_id, contact_id, _topic, _kind in changes:
        by_tenant.setdefault(tenant_id, set()).add(contact_id)
    for tenant_id, contact_ids in by_tenant.items():
        contacts_changed_receive(tenant_id, list(contact_ids))


@dataclass(frozen=True)
class CheckResult:
    evaluated: int  # contacts whose checks were taken (the rows the database deleted)
    joined: int  # members added across journeys
    left: int
    entered: int  # positions the database inserted


def _members_add(tenant: Tenant, journey: Journey, contact_ids: Sequence, now) -> list[uuid.UUID]:
    """The contacts that were not members (the rows the database inserted)."""
    with connection.cursor() as cursor:
        cursor.execute(_MEMBERS_INSERT, [tenant.pk, journey.pk, now, [str(c) for c in contact_ids]])
        return [row[0] for row in cursor.fetchall()]


def _enter(tenant: Tenant, journey: Journey, joined: list[uuid.UUID], now, how: str) -> int:
    entered = 0
    for start in range(0, len(joined), ENTER_BATCH):
        positions = engine.positions_enter(
            tenant=tenant, journey=journey, contact_ids=joined[start : start + ENTER_BATCH], now=now
        )
        entered += len(positions)
        if positions:
            from .. import tasks

            tasks.advance_soon(tenant=tenant, position_ids=[pid for pid, _ in positions])
    if joined:
        audit.record(
            actor=SYSTEM,
            action="journeys.segment_enter",
            target=journey,
            tenant=tenant,
            details={"how": how, "joined": len(joined), "entered": entered},
        )
    return entered


def _frozen(journey: Journey) -> dict:
    """The segment definition frozen into the live version; without one, nobody ("any" of nothing)."""
    version = journey.live_version
    return version.definition["entry"]["segment_definition"] if version is not None else {"any": []}


def _evaluate(journey: Journey, contact_ids: list, now) -> set | None:
    """Members among `contact_ids` now; None when the frozen definition no longer parses (a topic or
    a referenced segment removed since approval): the journey is skipped, and said so in the log."""
    try:
        return segment_members_among(
            tenant=journey.tenant,
            definition=_frozen(journey),
            contact_ids=contact_ids,
            now=now,
        )
    except DefinitionError:
        logger.warning("journeys.segment_unusable", extra={"journey": str(journey.pk)})
        return None


@transaction.atomic
def segment_checks_apply(*, tenant: Tenant, limit: int = CHECK_BATCH) -> CheckResult:
    """Take up to `limit` queued checks and move the contacts in or out of each segment-join
    journey's audience; those who joined enter the journey."""
    now = timezone.now()
    joined_total = left_total = entered = 0
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(_CHECKS_TAKE, [tenant.pk, limit])
        contact_ids = [row[0] for row in cursor.fetchall()]
        if not contact_ids:
            return CheckResult(0, 0, 0, 0)
        for journey in _segment_journeys(tenant.pk):
            members = _evaluate(journey, contact_ids, now)
            if members is None:
                continue
            known = set(
                SegmentMember.objects.filter(
                    tenant=tenant, journey=journey, contact_id__in=contact_ids
                ).values_list("contact_id", flat=True)
            )
            left = known - members
            if left:
                left_total += SegmentMember.objects.filter(
                    tenant=tenant, journey=journey, contact_id__in=left
                ).delete()[0]
            joined = _members_add(tenant, journey, sorted(members - known), now)
            joined_total += len(joined)
            entered += _enter(tenant, journey, joined, now, "change")
    return CheckResult(len(contact_ids), joined_total, left_total, entered)


def _members_sql(journey: Journey, now) -> tuple[sql.Composable, list]:
    return segment_members_query(
        tenant=journey.tenant,
        definition=_frozen(journey),
        now=now,
    )


def _run(query: sql.Composable, params: list) -> list:
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(query.as_string(connection.connection), params)
        return cursor.fetchall() if cursor.description else [(cursor.rowcount,)]


_RESET = (
    "INSERT INTO journeys_segmentmember (tenant_id, journey_id, contact_id, joined_at)"
    " SELECT {}, {}, m.id, {} FROM ({}) m"
)


def segment_members_reset(*, tenant: Tenant, journey: Journey, entry: dict) -> int:
    """At activation: the audience is who is a member now, and nobody enters for being one (joining
    is a change). Runs in the activation's transaction; returns the members recorded."""
    now = timezone.now()
    with tenant_context(tenant):
        SegmentMember.objects.filter(tenant=tenant, journey=journey).delete()
        members, params = segment_members_query(
            tenant=tenant, definition=entry["segment_definition"], now=now
        )
        query = sql.SQL(_RESET).format(sql.Placeholder(), sql.Placeholder(), sql.Placeholder(), members)
        return _run(query, [tenant.pk, journey.pk, now, *params])[0][0]


@transaction.atomic
def segment_members_reconcile(
    *, tenant: Tenant, journey: Journey, now: datetime.datetime | None = None
) -> int:
    """Once a day (compare-and-set on the organization's day): members the whole segment no longer
    has leave, and contacts it has that were not members join and enter. Returns how many entered."""
    now = now or timezone.now()
    today = timezone.localdate(now, timezone=zoneinfo.ZoneInfo(tenant.timezone))
    with tenant_context(tenant):
        claimed = (
            Journey.objects.filter(pk=journey.pk, tenant=tenant, status=Journey.Status.ACTIVE)
            .exclude(reconciled_on=today)
            .update(reconciled_on=today)
        )
        if not claimed:
            return 0
        journey = Journey.objects.select_related("live_version", "tenant").get(pk=journey.pk, tenant=tenant)
        try:
            members, params = _members_sql(journey, now)
        except DefinitionError:
            logger.warning("journeys.segment_unusable", extra={"journey": str(journey.pk)})
            return 0
        _run(
            sql.SQL(
                "DELETE FROM journeys_segmentmember s WHERE s.tenant_id = {} AND s.journey_id = {}"
                " AND NOT EXISTS (SELECT 1 FROM ({}) m WHERE m.id = s.contact_id)"
            ).format(sql.Placeholder(), sql.Placeholder(), members),
            [tenant.pk, journey.pk, *params],
        )
        joined = [
            row[0]
            for row in _run(
                sql.SQL(
                    _RESET
                    + " ON CONFLICT (tenant_id, journey_id, contact_id) DO NOTHING RETURNING contact_id"
                ).format(sql.Placeholder(), sql.Placeholder(), sql.Placeholder(), members),
                [tenant.pk, journey.pk, now, *params],
            )
        ]
        return _enter(tenant, journey, joined, now, "reconcile")
