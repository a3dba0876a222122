"""Disposal runs: preview, approval, destruction that cannot be undone, holds and exceptions win."""

import datetime

import pytest
from django.db import connection

from delivery.models import Message, MessageAttempt
from delivery.outbox import message_content
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.models import ObjectKey
from healthmail.crypto.objects import content_open
from healthmail.errors import Conflict
from healthmail.tenants.context import tenant_context
from retention import disposal, holds
from retention.models import DisposalCandidate, DisposalRun

from .helpers import YEAR, message_exists, new_contact, new_messages, officer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    started = []
    monkeypatch.setattr(disposal, "enqueue", lambda task, *, tenant, **ids: started.append(ids["run_id"]))
    return started


def _plan(tenant, actor):
    (run,) = [r for r in disposal.disposal_plan(tenant=tenant, actor=actor) if r.requires_approval]
    return run


def test_run_previews_then_destroys_only_after_approval(tenant_a, no_broker):
    actor = officer(tenant_a)
    old = new_messages(tenant_a, 3, age=8 * YEAR)
    young = new_messages(tenant_a, 2, age=2 * YEAR)
    run = _plan(tenant_a, actor)
    assert run.status == DisposalRun.Status.AWAITING_APPROVAL
    assert run.preview["message_metadata"]["to_destroy"] == 3
    assert set(run.preview["message_metadata"]["samples"]) == {str(m.pk) for m in old}
    # message content is destroyed with the rows (one pass), so it is not planned separately
    assert "message_content" not in run.preview or run.preview["message_content"]["candidates"] == 0
    assert disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk) == 0  # not approved yet
    assert all(message_exists(tenant_a, m.pk) for m in old)

    disposal.disposal_approve(tenant=tenant_a, actor=officer(tenant_a), run=run)
    assert no_broker == [str(run.pk)]
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)
    with tenant_context(tenant_a):
        run.refresh_from_db()
    assert run.status == DisposalRun.Status.COMPLETED
    assert run.destroyed_count == 3
    assert not any(message_exists(tenant_a, m.pk) for m in old)
    assert all(message_exists(tenant_a, m.pk) for m in young)


def test_destroyed_content_is_unrecoverable(tenant_a):
    actor = officer(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=8 * YEAR)
    with tenant_context(tenant_a):
        MessageAttempt.objects.create(
            tenant=tenant_a, message=message, started_at=message.created_at, outcome="sent"
        )
        sealed, key_id = bytes(message.content), message.content_key_id
        address_index = bytes(message.to_address_index)
    assert message_content(message).text == "A1C 7.1"
    run = _plan(tenant_a, actor)
    disposal.disposal_approve(tenant=tenant_a, actor=officer(tenant_a), run=run)
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)
    with tenant_context(tenant_a):
        assert not ObjectKey.objects.filter(pk=key_id).exists()  # the key is shredded
        assert not Message.objects.filter(pk=message.pk).exists()  # the row is gone
        assert not MessageAttempt.objects.filter(message_id=message.pk).exists()
        assert not Message.objects.filter(to_address_index=address_index).exists()  # blind index gone
    with pytest.raises(DecryptionError, match="shredded"):
        content_open(key_id, tenant_a.pk, sealed, aad=f"message-content|{message.pk}".encode())


def test_held_records_are_skipped_and_kept(tenant_a):
    actor = officer(tenant_a)
    patient = new_contact(tenant_a)
    held = new_messages(tenant_a, 2, age=8 * YEAR, contact=patient)
    free = new_messages(tenant_a, 2, age=8 * YEAR)
    holds.hold_create(
        tenant=tenant_a,
        actor=actor,
        matter="Doe v. Clinic",
        reason="Litigation",
        counsel="Outside counsel",
        scope=holds.HoldScope(contact_ids=(patient.pk,)),
    )
    run = _plan(tenant_a, actor)
    assert run.preview["message_metadata"]["held"] == 2
    disposal.disposal_approve(tenant=tenant_a, actor=officer(tenant_a), run=run)
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)
    assert all(message_exists(tenant_a, m.pk) for m in held)
    assert message_content(held[0]).text == "A1C 7.1"  # not altered either
    assert not any(message_exists(tenant_a, m.pk) for m in free)
    with tenant_context(tenant_a):
        reasons = set(
            DisposalCandidate.objects.filter(run=run, state="skipped").values_list("skip_reason", flat=True)
        )
    assert reasons == {"held"}


def test_approval_is_refused_when_the_policy_changed_after_the_preview(tenant_a):
    from retention.policies import PolicyInput, policy_decide, policy_propose

    author, approver = officer(tenant_a), officer(tenant_a)
    new_messages(tenant_a, 1, age=8 * YEAR)
    run = _plan(tenant_a, author)
    version = policy_propose(
        tenant=tenant_a,
        actor=author,
        category="message_metadata",
        data=PolicyInput(6 * 365, 10 * 365, "destroy", True, "Longer, for a state rule", "State audit"),
    )
    policy_decide(tenant=tenant_a, actor=approver, policy=version, approve=True)
    with pytest.raises(Conflict, match="policy changed"):
        disposal.disposal_approve(tenant=tenant_a, actor=approver, run=run)


def test_crash_mid_run_resumes_without_half_destroyed_records(tenant_a, monkeypatch):
    import dataclasses

    from retention import registry

    actor = officer(tenant_a)
    messages = new_messages(tenant_a, 6, age=8 * YEAR)
    run = _plan(tenant_a, actor)
    disposal.disposal_approve(tenant=tenant_a, actor=officer(tenant_a), run=run)
    category = registry.category_get("message_metadata")
    calls = []

    def crash_on_second_batch(cat, tenant_id, ids):
        calls.append(ids)
        if len(calls) == 2:
            category.destroy(cat, tenant_id, ids)  # destroy, then die before the batch commits
            raise RuntimeError("worker killed")
        return category.destroy(cat, tenant_id, ids)

    monkeypatch.setitem(
        registry._categories, "message_metadata", dataclasses.replace(category, destroy=crash_on_second_batch)
    )
    with pytest.raises(RuntimeError):
        disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk, batch_size=2)
    with tenant_context(tenant_a):
        run.refresh_from_db()
        destroyed = set(
            DisposalCandidate.objects.filter(run=run, state="destroyed").values_list("record_id", flat=True)
        )
    assert run.status == DisposalRun.Status.RUNNING
    assert run.destroyed_count == 2
    assert destroyed == {r for r in map(str, (m.pk for m in messages)) if not message_exists(tenant_a, r)}
    for message in messages:  # every record is either fully there (content opens) or fully gone
        if message_exists(tenant_a, message.pk):
            assert message_content(message).text == "A1C 7.1"
    assert not hasattr(run, "certificate") or run.certificate is None

    monkeypatch.setitem(registry._categories, "message_metadata", category)
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk, batch_size=2)
    with tenant_context(tenant_a):
        run.refresh_from_db()
        assert run.status == DisposalRun.Status.COMPLETED
        assert run.certificate.record_count == 6
    assert not any(message_exists(tenant_a, m.pk) for m in messages)


def test_runs_never_cross_tenants(tenant_a, tenant_b):
    new_messages(tenant_a, 2, age=8 * YEAR)
    kept = new_messages(tenant_b, 2, age=8 * YEAR)
    actor = officer(tenant_a)
    run = _plan(tenant_a, actor)
    disposal.disposal_approve(tenant=tenant_a, actor=officer(tenant_a), run=run)
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)
    assert all(message_exists(tenant_b, m.pk) for m in kept)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM retention_disposalcandidate")
        assert cursor.fetchone()[0] == 0  # no tenant context: RLS shows nothing


def test_nothing_due_plans_no_run(tenant_a):
    new_messages(tenant_a, 1, age=datetime.timedelta(days=3))
    assert disposal.disposal_plan(tenant=tenant_a, actor=officer(tenant_a)) == []
