"""A hold created while a disposal run is in progress: the run skips what it now covers, and a
hold created during a batch waits for that batch (holds.py's lock), so nothing held is destroyed.
The same holds for a campaign hold's reach to its recipients' contact records."""

import dataclasses
import datetime
import threading
import uuid

import pytest
from django.db import connections
from django.utils import timezone

from contacts.models import Contact
from healthmail.tenants.context import tenant_context
from retention import disposal, holds, registry
from retention.models import DisposalCandidate, DisposalRun
from tests.factories import BaaFactory, TenantFactory

from .helpers import YEAR, message_exists, new_contact, new_messages, officer

DAY = datetime.timedelta(days=1)


@pytest.fixture
def tenant(committed_db, monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)
    slug = f"race-{uuid.uuid4().hex[:10]}"
    tenant = TenantFactory(name=slug, slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


def _in_thread(function):
    """Run `function` on its own thread and database connection; returns (thread, result box)."""
    box = {}

    def target():
        try:
            box["value"] = function()
        except Exception as error:  # noqa: BLE001 - reported to the test thread
            box["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def _hold_from_another_connection(tenant, actor, scope: holds.HoldScope) -> None:
    """A hold placed by someone else between two batches of the run (its own thread and connection)."""
    thread, box = _in_thread(
        lambda: holds.hold_create(
            tenant=tenant, actor=actor, matter="M", reason="R", counsel="C", scope=scope
        )
    )
    thread.join(timeout=30)
    assert "error" not in box


def _approved_run(tenant, actor):
    (run,) = disposal.disposal_plan(tenant=tenant, actor=actor)
    disposal.disposal_approve(tenant=tenant, actor=officer(tenant), run=run)
    return run


def test_hold_created_between_batches_is_honoured(tenant):
    actor = officer(tenant)
    patient = new_contact(tenant)
    first = new_messages(tenant, 3, age=8 * YEAR)  # planned first: destroyed in batch one
    late = new_messages(tenant, 3, age=8 * YEAR, contact=patient)
    run = _approved_run(tenant, actor)
    assert disposal.disposal_run_batch(tenant_id=tenant.pk, run_id=run.pk, batch_size=3)

    _hold_from_another_connection(tenant, actor, holds.HoldScope(contact_ids=(patient.pk,)))

    disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=run.pk, batch_size=3)
    assert not any(message_exists(tenant, m.pk) for m in first)
    assert all(message_exists(tenant, m.pk) for m in late)
    with tenant_context(tenant):
        run.refresh_from_db()
        assert run.status == DisposalRun.Status.COMPLETED
        assert run.certificate.record_count == 3  # only what was destroyed
        skipped = DisposalCandidate.objects.filter(run=run, state="skipped", skip_reason="held").count()
    assert skipped == 3


def test_hold_created_during_a_batch_waits_for_it(tenant, monkeypatch):
    actor = officer(tenant)
    patient = new_contact(tenant)
    messages = new_messages(tenant, 4, age=8 * YEAR, contact=patient)
    run = _approved_run(tenant, actor)
    category = registry.category_get("message_metadata")
    seen = {}

    def destroy_while_a_hold_is_being_created(cat, tenant_id, ids):
        scope = holds.HoldScope(contact_ids=(patient.pk,))
        thread, box = _in_thread(
            lambda: holds.hold_create(
                tenant=tenant, actor=actor, matter="M", reason="R", counsel="C", scope=scope
            )
        )
        thread.join(timeout=1.0)
        seen["blocked"] = thread.is_alive()  # waiting on the holds lock this batch holds
        seen["thread"], seen["box"] = thread, box
        return category.destroy(cat, tenant_id, ids)

    monkeypatch.setitem(
        registry._categories,
        "message_metadata",
        dataclasses.replace(category, destroy=destroy_while_a_hold_is_being_created),
    )
    assert disposal.disposal_run_batch(tenant_id=tenant.pk, run_id=run.pk, batch_size=2)
    seen["thread"].join(timeout=30)
    monkeypatch.setitem(registry._categories, "message_metadata", category)
    assert seen["blocked"], "the hold did not wait for the batch"
    hold = seen["box"]["value"]

    disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=run.pk, batch_size=2)
    with tenant_context(tenant):
        destroyed = list(DisposalCandidate.objects.filter(run=run, state="destroyed"))
        held = DisposalCandidate.objects.filter(run=run, skip_reason="held").count()
    assert len(destroyed) == 2
    assert held == 2
    assert all(c.destroyed_at < hold.created_at for c in destroyed)  # destroyed before the hold existed
    assert sum(message_exists(tenant, m.pk) for m in messages) == 2


def _deleted_people(tenant, count):
    return [new_contact(tenant, deleted_at=timezone.now() - 90 * DAY) for _ in range(count)]


def _tombstoned(tenant, contacts) -> set:
    with tenant_context(tenant):
        rows = Contact.objects.filter(pk__in=[c.pk for c in contacts], email_index__isnull=True)
        return set(rows.values_list("pk", flat=True))


def test_a_campaign_hold_created_between_batches_keeps_its_recipients(tenant):
    actor = officer(tenant)
    first = _deleted_people(tenant, 3)  # planned first: tombstoned in batch one
    recipients = _deleted_people(tenant, 3)
    for person in (*first, *recipients):
        new_messages(tenant, 1, age=YEAR, contact=person, source_id="c-9" if person in recipients else "c-1")
    (run,) = disposal.disposal_plan(tenant=tenant, actor=actor, categories=["contacts"])
    assert disposal.disposal_run_batch(tenant_id=tenant.pk, run_id=run.pk, batch_size=3)

    _hold_from_another_connection(tenant, actor, holds.HoldScope(sources=("campaign:c-9",)))

    disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=run.pk, batch_size=3)
    assert _tombstoned(tenant, (*first, *recipients)) == {c.pk for c in first}
    with tenant_context(tenant):
        held = set(
            DisposalCandidate.objects.filter(run=run, skip_reason="held").values_list("record_id", flat=True)
        )
    assert held == {str(c.pk) for c in recipients}


def test_a_recipient_reached_after_planning_is_skipped_by_the_run(tenant):
    """The campaign keeps sending after the run was planned: the batch sees the new recipient."""
    actor = officer(tenant)
    late, bystander = _deleted_people(tenant, 2)
    holds.hold_create(
        tenant=tenant,
        actor=actor,
        matter="M",
        reason="R",
        counsel="C",
        scope=holds.HoldScope(sources=("campaign:c-9",)),
    )
    (run,) = disposal.disposal_plan(tenant=tenant, actor=actor, categories=["contacts"])
    assert run.preview["contacts"]["held"] == 0  # nobody had received the campaign yet
    new_messages(tenant, 1, age=DAY, contact=late, source_id="c-9")

    disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=run.pk)
    assert _tombstoned(tenant, (late, bystander)) == {bystander.pk}
    assert holds.holds_for_contact(tenant=tenant, contact_id=late.pk) != []
