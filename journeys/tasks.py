"""Journey tasks on the marketing queue: ids in, tenant context around the body, a service call. One
exception: a single contact's event wake-up runs on the transactional queue's workers
(`journeys_event_advance`), so it never waits behind a backlog advance that keeps both marketing
processes busy for minutes.

The database is the record: a wake-up the broker loses is found again by the sweep, which looks for
due positions in every tenant.
"""

from __future__ import annotations

import time

from django.db import OperationalError
from django.utils import timezone

from healthmail.celery import app
from healthmail.tasks import enqueue, tenant_task
from healthmail.tenants.context import context_tenant_id, tenant_context
from healthmail.tenants.models import Tenant

from . import definition as spec
from .models import Journey, Position, SegmentCheck
from .services import dates, engine, segments, unopened

UNOPENED_EVENT = f"email.{spec.NOT_OPENED}"  # Journey.entry_event of a "did not open" trigger
RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 5, "retry_jitter": True, "max_retries": 5}


def _tenant() -> Tenant:
    return Tenant.objects.get(pk=context_tenant_id())


@tenant_task(queue="marketing", acks_late=True, soft_time_limit=270, time_limit=300, **RETRY)
def journeys_advance_positions(position_ids: list[str]) -> int:
    """The positions an event or an enrolment just made due: advanced now, ahead of any backlog."""
    return engine.positions_advance(tenant=_tenant(), ids=position_ids).advanced


@tenant_task(queue="transactional", acks_late=True, soft_time_limit=50, time_limit=60, **RETRY)
def journeys_event_advance(position_ids: list[str]) -> int:
    """The positions one contact's event (API event, open, click) or enrolment just made due: a few
    rows, on the transactional workers, so a million-contact backlog on the marketing queue does not
    delay them.
    Positions a backlog worker holds are skipped (SKIP LOCKED): that worker advances them."""
    return engine.positions_advance(tenant=_tenant(), ids=position_ids).advanced


@tenant_task(queue="marketing", acks_late=True, soft_time_limit=270, time_limit=300, **RETRY)
def journeys_advance_due() -> int:
    return engine.positions_advance_all(tenant=_tenant(), budget_seconds=240.0)


@tenant_task(queue="marketing", acks_late=True, soft_time_limit=270, time_limit=300, **RETRY)
def journeys_date_enrol(journey_id: str) -> int:
    tenant = _tenant()
    journey = Journey.objects.select_related("live_version").get(pk=journey_id, tenant=tenant)
    return dates.journey_date_enrol(tenant=tenant, journey=journey)


@tenant_task(queue="marketing", acks_late=True, soft_time_limit=270, time_limit=300, **RETRY)
def journeys_segment_checks() -> int:
    """The contacts whose data changed, checked against the segment-join journeys batch by batch
    (each batch its own transaction) until none are left or the time is up."""
    tenant, evaluated = _tenant(), 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        taken = segments.segment_checks_apply(tenant=tenant).evaluated
        evaluated += taken
        if not taken:
            break
    return evaluated


@tenant_task(queue="marketing", acks_late=True, soft_time_limit=270, time_limit=300, **RETRY)
def journeys_segment_reconcile(journey_id: str) -> int:
    tenant = _tenant()
    journey = Journey.objects.get(pk=journey_id, tenant=tenant)
    return segments.segment_members_reconcile(tenant=tenant, journey=journey)


@tenant_task(queue="marketing", acks_late=True, soft_time_limit=270, time_limit=300, **RETRY)
def journeys_unopened_enrol(journey_id: str) -> int:
    """The "did not open within N days" trigger: batches of deliveries that just came due (each its
    own transaction) until none are left or the time is up. Returns how many entered."""
    tenant, entered = _tenant(), 0
    journey = Journey.objects.get(pk=journey_id, tenant=tenant)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        read, batch_entered = unopened.unopened_enrol(tenant=tenant, journey=journey)
        entered += batch_entered
        if not read:
            break
    return entered


def segment_checks_soon(*, tenant) -> None:
    """After commit, a worker checks the queued contacts; if the broker is down the checks stay
    queued and `journeys_sweep` finds them."""
    enqueue(journeys_segment_checks, tenant=tenant, robust=True)


def advance_soon(*, tenant, position_ids, one_contact: bool = False) -> None:
    """After commit, a worker advances exactly these positions. If the broker is down the positions
    stay due and `journeys_sweep` finds them, so the caller's answer (an accepted event) stands.
    `one_contact`: one contact's event or enrolment made them due (a handful of rows): the
    transactional workers take it; bulk entries (segment joins, consent changes, the unopened
    trigger) stay on the marketing queue."""
    task = journeys_event_advance if one_contact else journeys_advance_positions
    enqueue(task, tenant=tenant, robust=True, position_ids=[str(p) for p in position_ids])


@app.task(
    name="journeys.tasks.journeys_sweep",
    queue="marketing",
    ignore_result=True,
    soft_time_limit=50,
    time_limit=60,
)
def journeys_sweep() -> dict[str, int]:
    """Every tenant with due positions or queued segment checks gets a worker; every active date or
    segment-join journey runs its day (the date trigger; the segment reconcile); every active "did
    not open within N days" journey reads the deliveries that just came due."""
    now = timezone.now()
    due = checks = dates = unopened_journeys = 0
    for tenant_id in Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("pk", flat=True):
        with tenant_context(tenant_id):
            if Position.objects.filter(
                tenant_id=tenant_id,
                state=Position.State.WAITING,
                due_at__lte=now,
                journey__status=Journey.Status.ACTIVE,
            ).exists():
                journeys_advance_due.apply_async(kwargs={"tenant_id": str(tenant_id)})
                due += 1
            if SegmentCheck.objects.filter(tenant_id=tenant_id).exists():
                journeys_segment_checks.apply_async(kwargs={"tenant_id": str(tenant_id)})
                checks += 1
            for journey_id, kind in Journey.objects.filter(
                tenant_id=tenant_id, status=Journey.Status.ACTIVE, entry_kind__in=("date", "segment")
            ).values_list("pk", "entry_kind"):
                task = journeys_date_enrol if kind == "date" else journeys_segment_reconcile
                task.apply_async(kwargs={"tenant_id": str(tenant_id), "journey_id": str(journey_id)})
                dates += 1
            for journey_id in Journey.objects.filter(
                tenant_id=tenant_id,
                status=Journey.Status.ACTIVE,
                entry_kind="engagement",
                entry_event=UNOPENED_EVENT,
            ).values_list("pk", flat=True):
                journeys_unopened_enrol.apply_async(
                    kwargs={"tenant_id": str(tenant_id), "journey_id": str(journey_id)}
                )
                unopened_journeys += 1
    return {
        "tenants_due": due,
        "tenants_checked": checks,
        "daily_journeys": dates,
        "unopened_journeys": unopened_journeys,
    }
