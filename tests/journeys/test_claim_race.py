"""No contact advances twice: two workers claiming due positions at the same moment each take rows the
other skipped (FOR UPDATE SKIP LOCKED), and every step is taken once. Committed rows, two connections."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from healthmail.tenants.context import tenant_context
from journeys.models import Position, StepLog
from journeys.services import engine, enrolment

from .conftest import SYSTEM, active_journey, patient


@pytest.fixture
def committed_tenant(committed_db, monkeypatch):
    """A tenant whose rows commit (two connections must see them); no broker wake-ups."""
    from journeys import tasks
    from tests.factories import BaaFactory, TenantFactory

    monkeypatch.setattr(tasks, "advance_soon", lambda **kwargs: None)
    slug = f"journeys-{uuid.uuid4().hex[:10]}"
    tenant = TenantFactory(name=slug, slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


def test_two_workers_claiming_at_once_never_advance_the_same_contact(committed_tenant):
    tenant_a = committed_tenant
    journey = active_journey(tenant_a)
    contacts = [patient(tenant_a, opt_in=False) for _ in range(40)]
    for contact in contacts:
        enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)
    with tenant_context(tenant_a):
        assert (
            Position.objects.filter(journey=journey, state="waiting", due_at__lte=timezone.now()).count()
            == 40
        )
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def worker():
        try:
            barrier.wait()
            reports.append(engine.positions_advance(tenant=tenant_a, batch=30))
        except Exception as error:  # noqa: BLE001 - reported to the test thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(r.advanced for r in reports) == len(contacts)
    with tenant_context(tenant_a):
        entered = StepLog.objects.filter(journey=journey, step="wait", outcome="waiting").count()
    assert entered == len(contacts)  # each contact entered its wait exactly once
