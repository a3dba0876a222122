"""The "did not open within N days" trigger: a contact enters when an email of the watched send (a
campaign, or one send step of a journey, as the marketer chose) was delivered to it N days ago and it
has neither opened nor clicked that email since.

Evaluated incrementally, never by rescanning contacts or whole sends. Each such journey keeps a
cursor (Journey.unopened_checked_at/_id: the delivery time and message id up to which the send's
deliveries have been looked at). Each journeys sweep (JOURNEYS_SWEEP_SECONDS) gives the journey a
worker, which in one transaction holding the journey's row lock:

1. reads the next deliveries of the send whose N days are over, in delivery order, at most BATCH
   (the partial index message_source_delivered: tenant, source, delivery time, id; delivered states
   only), so a tick reads only the deliveries that just came due;
2. keeps those of them without a human open or click within the N days (one query on the events of
   exactly those messages, by the engagement events' message index);
3. enters their contacts (the journey's re-entry rule and one open position per contact apply);
4. moves the cursor past the last delivery read.

Two workers never read the same deliveries (the row lock; the second skips), and a worker that dies
rolls back with the cursor where it was. So each delivered message is looked at exactly once: a
contact enters at most once per email it did not open.

What counts as opened: a human open or a human click (a click means it was read, even with images
blocked) before the N days ended. Machine opens do not count: the tracking code flags scanner and
prefetch fetches (known security-scanner and bot user agents, Apple Mail Privacy Protection's
proxies, fetches within two seconds of delivery, HEAD requests) as `is_bot`, and those are left out
here as in every engagement count. A contact whose only "opens" were machines did not open. An open
after the N days ended does not undo a miss already due (the window is exact, not the tick's).

Entering sends nothing by itself: a send step of the journey asks the send gate (consent,
suppression, authorization, legal hold) like every other.

When the journey is activated with a new watched send or number of days, or resumed after a pause,
the cursor starts at that moment: emails whose N days ended before (or while paused) do not enter
anyone.
"""

from __future__ import annotations

import datetime
import uuid

from django.db import connection, transaction
from django.utils import timezone

from audit import services as audit
from campaigns.selectors import SOURCE_TYPE as CAMPAIGN_SOURCE
from delivery.models import DELIVERED_STATES, EngagementEvent
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .. import definition as spec
from ..models import Journey, JourneyVersion
from . import engine

BATCH = 5_000
SYSTEM = Actor.system("journeys")

_DUE = """
SELECT m.id, m.contact_id, m.finished_at FROM delivery_message m
WHERE m.tenant_id = %(tenant)s AND m.source_type = %(type)s AND m.source_id = ANY(%(sources)s)
  AND m.state = ANY(%(states)s) AND /*after*/ AND m.finished_at <= %(cut)s
ORDER BY m.finished_at, m.id
LIMIT %(limit)s
"""
_AFTER_TIME = "m.finished_at > %(after)s"
_AFTER_ROW = "(m.finished_at, m.id) > (%(after)s, %(after_id)s)"


def is_unopened(entry: dict) -> bool:
    return entry.get("kind") == "engagement" and entry.get("action") == spec.NOT_OPENED


def cursor_start(*, tenant: Tenant, journey: Journey, entry: dict, now: datetime.datetime) -> None:
    """From now on: deliveries whose N days end after `now` are watched (those ending earlier are
    not). Called at activation (new send or days) and on resume, in their transaction."""
    Journey.objects.filter(pk=journey.pk, tenant=tenant).update(
        unopened_checked_at=now - datetime.timedelta(days=int(entry["days"])), unopened_checked_id=None
    )


def _source(tenant: Tenant, entry: dict) -> tuple[str, list[str]]:
    """The outbox source of the watched send: a campaign's id, or every version of the journey with
    the step (a journey message's source id is "<version id>:<step>")."""
    if "campaign_id" in entry:
        return CAMPAIGN_SOURCE, [str(entry["campaign_id"])]
    from .steps import SOURCE_TYPE, source_id

    versions = JourneyVersion.objects.filter(tenant=tenant, journey_id=entry["journey_id"]).values_list(
        "pk", flat=True
    )
    return SOURCE_TYPE, [source_id(version, entry["step"]) for version in versions]


def _engaged(tenant: Tenant, due: list[tuple], days: int) -> set[uuid.UUID]:
    """The messages of `due` (id, contact, delivered at) opened or clicked by a person within `days`
    of their delivery."""
    window = datetime.timedelta(days=days)
    delivered = {message_id: at for message_id, _, at in due}
    events = EngagementEvent.objects.filter(
        tenant=tenant,
        message_id__in=list(delivered),
        kind__in=(EngagementEvent.Kind.OPEN, EngagementEvent.Kind.CLICK),
        is_bot=False,
    ).values_list("message_id", "occurred_at")
    return {message_id for message_id, at in events if at < delivered[message_id] + window}


@transaction.atomic
def unopened_enrol(
    *, tenant: Tenant, journey: Journey, now: datetime.datetime | None = None, limit: int = BATCH
) -> tuple[int, int]:
    """One batch: the next deliveries of the watched send whose N days are over, and the contacts
    of those not opened entered. Returns (deliveries read, positions entered); (0, 0) when nothing
    is due, the journey is not active, or another worker holds it."""
    now = now or timezone.now()
    with tenant_context(tenant):
        locked = (
            Journey.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("live_version")
            .filter(pk=journey.pk, tenant=tenant, status=Journey.Status.ACTIVE)
            .first()
        )
        if locked is None or locked.live_version is None:
            return 0, 0
        entry = locked.live_version.definition["entry"]
        if not is_unopened(entry) or locked.unopened_checked_at is None:
            return 0, 0
        days = int(entry["days"])
        source_type, sources = _source(tenant, entry)
        after = _AFTER_ROW if locked.unopened_checked_id else _AFTER_TIME
        with connection.cursor() as cursor:
            cursor.execute(
                _DUE.replace("/*after*/", after),
                {
                    "tenant": tenant.pk,
                    "type": source_type,
                    "states": list(DELIVERED_STATES),
                    "sources": sources,
                    "after": locked.unopened_checked_at,
                    "after_id": locked.unopened_checked_id,
                    "cut": now - datetime.timedelta(days=days),
                    "limit": limit,
                },
            )
            due = cursor.fetchall()
        if not due:
            return 0, 0
        opened = _engaged(tenant, due, days)
        missed = sorted({contact for message, contact, _ in due if message not in opened and contact})
        entered = engine.positions_enter(tenant=tenant, journey=locked, contact_ids=missed, now=now)
        Journey.objects.filter(pk=locked.pk, tenant=tenant).update(
            unopened_checked_at=due[-1][2], unopened_checked_id=due[-1][0]
        )
        audit.record(
            actor=SYSTEM,
            action="journeys.unopened_enrol",
            target=locked,
            tenant=tenant,
            details={"read": len(due), "not_opened": len(missed), "entered": len(entered)},
        )
        if entered:
            from .. import tasks  # tasks import the services

            tasks.advance_soon(tenant=tenant, position_ids=[pid for pid, _ in entered])
    return len(due), len(entered)
