"""Disposal counts what the database did (issue 14, item 1).

Records of every registered category go through disposal runs; each certificate's counts and
manifest are compared with the rows the database no longer holds (an oracle written from the
tables, tests/retention/helpers.records_gone), including tracking events, which Django deletes on
its fast path. A planted mismatch stops the run: no certificate.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib

import pytest
from django.db import connection

from audit.models import AuditEvent
from delivery.models import EngagementEvent, PortalMessage
from healthmail.tenants.context import tenant_context
from retention import certificates, destruction, disposal, registry
from retention.models import DestructionCertificate, DisposalCandidate, DisposalRun

from .helpers import (
    YEAR,
    new_contact,
    new_deleted_contact,
    new_export,
    new_messages,
    new_portal_copy,
    new_tracking_event,
    new_webhook_delivery,
    officer,
    policy_set,
    records_gone,
)

pytestmark = pytest.mark.django_db
DAY = datetime.timedelta(days=1)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)


def _seed(tenant, actor) -> dict[str, tuple[list[str], list[str]]]:
    """category -> (ids past their maximum, ids within it), for every destroyable category."""
    # Metadata kept nine years, content seven: messages of eight years lose their content only.
    policy_set(tenant, "message_metadata", max_retention_days=9 * 365)
    old, shredded, young = (
        new_messages(tenant, 2, age=10 * YEAR),
        new_messages(tenant, 2, age=8 * YEAR),
        new_messages(tenant, 1, age=YEAR),
    )
    portal_due = [new_portal_copy(tenant, m) for m in shredded]
    new_portal_copy(tenant, old[0])  # goes with its message (message metadata), counted along
    patient = new_contact(tenant)
    return {
        "message_metadata": ([str(m.pk) for m in old], [str(m.pk) for m in shredded + young]),
        "message_content": ([str(m.pk) for m in shredded], [str(m.pk) for m in young]),
        "portal_messages": (portal_due, [new_portal_copy(tenant, young[0])]),
        "tracking_events": (
            [new_tracking_event(tenant, age=3 * YEAR, contact=patient) for _ in range(2)]
            + [new_tracking_event(tenant, age=YEAR, message=old[1])],  # its message is ten years old
            [new_tracking_event(tenant, age=YEAR, contact=patient)],
        ),
        "webhook_logs": (
            [new_webhook_delivery(tenant, age=400 * DAY)],
            [new_webhook_delivery(tenant, age=DAY)],
        ),
        "contacts": ([new_deleted_contact(tenant, age=90 * DAY)], [new_deleted_contact(tenant, age=5 * DAY)]),
        "exports": (
            [new_export(tenant, actor, age=100 * DAY, contact=patient)],
            [new_export(tenant, actor, age=10 * DAY, contact=patient)],
        ),
    }


def _dispose(tenant, requester, approver) -> list[DisposalRun]:
    runs = disposal.disposal_plan(tenant=tenant, actor=requester)
    for run in runs:
        if run.status == DisposalRun.Status.AWAITING_APPROVAL:
            disposal.disposal_approve(tenant=tenant, actor=approver, run=run)
        disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=run.pk, batch_size=2)
    with tenant_context(tenant):
        return list(DisposalRun.objects.filter(pk__in=[r.pk for r in runs]).select_related("certificate"))


def _manifest(gone: dict[str, set[str]]) -> tuple[str, int]:
    lines = sorted(f"{category}\t{record_id}\n" for category, ids in gone.items() for record_id in ids)
    return hashlib.sha256("".join(lines).encode()).hexdigest(), len(lines)


def test_every_category_certificate_counts_and_manifest_match_the_rows_gone(tenant_a):
    requester, approver = officer(tenant_a), officer(tenant_a)
    seeded = _seed(tenant_a, requester)
    destroyable = {c.key for c in registry.all_categories() if c.destroyable}
    assert set(seeded) == destroyable, "a registered category is not exercised by this test"
    for category in registry.all_categories():  # the others can never be destroyed by a run
        if not category.destroyable:
            assert "destroy" not in category.actions

    runs = _dispose(tenant_a, requester, approver)

    gone = {key: records_gone(tenant_a, key, due + kept) for key, (due, kept) in seeded.items()}
    # The oracle agrees with the scenario: every record past its maximum went, nothing younger did.
    assert gone == {key: set(due) for key, (due, _) in seeded.items()}
    assert all(r.status == DisposalRun.Status.COMPLETED for r in runs)
    assert {key for r in runs for key in r.categories} == destroyable
    for run in runs:
        certificate = run.certificate
        in_run = {key: ids for key, ids in gone.items() if key in run.categories}
        digest, count = _manifest(in_run)
        assert (certificate.record_count, certificate.manifest_sha256) == (count, digest)
        assert {row["category"]: row["count"] for row in certificate.document["categories"]} == {
            key: len(ids) for key, ids in in_run.items() if ids
        }
        assert certificate.document["skipped"] == {}
        assert certificates.certificate_verify(tenant=tenant_a, certificate=certificate) == []
    [messages_run] = [r for r in runs if "message_metadata" in r.categories]
    [metadata] = [
        c for c in messages_run.certificate.document["categories"] if c["category"] == "message_metadata"
    ]
    assert metadata["removed_along"]["delivery.PortalMessage"] == 1
    # Each batch's audit event states what the database destroyed.
    with tenant_context(tenant_a):
        events = AuditEvent.objects.filter(tenant=tenant_a, action="retention.destroy")
        audited: dict[str, int] = {}
        for event in events:
            audited[event.details["category"]] = (
                audited.get(event.details["category"], 0) + event.details["destroyed"]
            )
    assert audited == {key: len(ids) for key, ids in gone.items() if ids}


def test_fast_deleted_tracking_events_are_counted_on_the_certificate_and_in_the_pdf(tenant_a):
    actor = officer(tenant_a)
    due = [new_tracking_event(tenant_a, age=3 * YEAR) for _ in range(2)]
    kept = [new_tracking_event(tenant_a, age=YEAR) for _ in range(2)]
    [run] = _dispose(tenant_a, actor, actor)
    assert records_gone(tenant_a, "tracking_events", due + kept) == set(due)
    certificate = run.certificate
    assert certificate.record_count == 2
    assert certificate.manifest_sha256 == _manifest({"tracking_events": set(due)})[0]
    assert certificate.document["categories"][0]["count"] == 2
    assert certificate.manifest_sha256 != hashlib.sha256(b"").hexdigest()


def _tracking_run(tenant, count=4):
    actor = officer(tenant)
    ids = [new_tracking_event(tenant, age=3 * YEAR) for _ in range(count)]
    [run] = disposal.disposal_plan(tenant=tenant, actor=actor)
    return run, ids


def _halted(tenant, run) -> DisposalRun:
    with tenant_context(tenant):
        run.refresh_from_db()
        assert run.status == DisposalRun.Status.HALTED
        assert not DestructionCertificate.objects.filter(run=run).exists()
        assert AuditEvent.objects.filter(
            tenant=tenant, action="retention.disposal_halt", target_id=str(run.pk)
        ).exists()
    return run


def test_a_destroyer_that_destroys_fewer_than_asked_stops_the_run(tenant_a, monkeypatch):
    run, ids = _tracking_run(tenant_a)
    category = registry.category_get("tracking_events")

    def loses_one(cat, tenant_id, record_ids):
        done = category.destroy(cat, tenant_id, record_ids)
        return destruction.Destroyed(done.ids[:-1], done.cascaded, done.removed)

    monkeypatch.setitem(
        registry._categories, "tracking_events", dataclasses.replace(category, destroy=loses_one)
    )
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk, batch_size=2)
    run = _halted(tenant_a, run)
    assert "destroyed 1 of the 2 live records" in run.halt_reason
    assert records_gone(tenant_a, "tracking_events", ids) == set()  # the batch rolled back
    # A halted run does not resume.
    monkeypatch.setitem(registry._categories, "tracking_events", category)
    assert disposal.disposal_run_batch(tenant_id=tenant_a.pk, run_id=run.pk) is False


def test_a_destroyer_that_reports_rows_it_did_not_destroy_stops_the_run(tenant_a, monkeypatch):
    run, ids = _tracking_run(tenant_a, count=2)
    category = registry.category_get("tracking_events")
    monkeypatch.setitem(
        registry._categories,
        "tracking_events",
        dataclasses.replace(
            category, destroy=lambda cat, tenant_id, record_ids: destruction.Destroyed(record_ids)
        ),
    )
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk, batch_size=2)
    run = _halted(tenant_a, run)
    assert "counted as destroyed are still there" in run.halt_reason
    assert records_gone(tenant_a, "tracking_events", ids) == set()


def test_a_record_marked_destroyed_behind_the_runs_back_refuses_the_certificate(tenant_a):
    run, _ = _tracking_run(tenant_a)
    assert disposal.disposal_run_batch(tenant_id=tenant_a.pk, run_id=run.pk, batch_size=2)
    with tenant_context(tenant_a):  # a pending candidate marked destroyed, counters adjusted
        candidate = DisposalCandidate.objects.filter(run=run, state="pending").first()
        DisposalCandidate.objects.filter(pk=candidate.pk).update(state="destroyed")
        DisposalRun.objects.filter(pk=run.pk).update(destroyed_count=3)
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk, batch_size=2)
    run = _halted(tenant_a, run)
    assert "1 tracking events counted as destroyed are still there" in run.halt_reason


def test_a_candidate_added_behind_the_runs_back_refuses_the_certificate(tenant_a):
    run, _ = _tracking_run(tenant_a, count=2)
    with tenant_context(tenant_a):
        extra = DisposalCandidate.objects.filter(run=run).first()
        extra.pk, extra.record_id = None, "999999999"
        extra.save()
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk, batch_size=2)
    run = _halted(tenant_a, run)
    assert "3 candidates are recorded but 2 were planned" in run.halt_reason


def test_a_record_deleted_before_the_run_reaches_it_is_reported_missing(tenant_a):
    run, ids = _tracking_run(tenant_a, count=3)
    with tenant_context(tenant_a):
        EngagementEvent.objects.filter(pk=ids[0]).delete()
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk, batch_size=2)
    with tenant_context(tenant_a):
        certificate = DestructionCertificate.objects.get(run=run)
    assert certificate.record_count == 2
    assert certificate.document["skipped"] == {"missing": 1}


def test_a_record_that_reappears_after_the_certificate_fails_verification(tenant_a):
    actor = officer(tenant_a)
    ids = [new_tracking_event(tenant_a, age=3 * YEAR) for _ in range(2)]
    [run] = _dispose(tenant_a, actor, actor)
    assert certificates.certificate_verify(tenant=tenant_a, certificate=run.certificate) == []
    with tenant_context(tenant_a):
        EngagementEvent.objects.create(
            pk=int(ids[0]), tenant=tenant_a, kind="page_view", occurred_at=run.as_of - 3 * YEAR
        )
    problems = certificates.certificate_verify(tenant=tenant_a, certificate=run.certificate)
    assert problems == ["1 records the certificate counts as destroyed are in the database"]


def test_a_record_removed_with_another_categorys_record_is_counted_destroyed_in_its_own(
    tenant_a, monkeypatch
):
    """Portal copies are normally left out of a run that deletes their message (subsumed); when one
    is planned anyway, the message's deletion takes it along and it is counted destroyed, not missing."""
    portal = registry.category_get("portal_messages")
    monkeypatch.setitem(registry._categories, "portal_messages", dataclasses.replace(portal, subsumed_by=()))
    actor, approver = officer(tenant_a), officer(tenant_a)
    [message] = new_messages(tenant_a, 1, age=8 * YEAR)
    copy = new_portal_copy(tenant_a, message)
    [run] = _dispose(tenant_a, actor, approver)
    assert records_gone(tenant_a, "portal_messages", [copy]) == {copy}
    with tenant_context(tenant_a):
        assert not PortalMessage.objects.filter(pk=copy).exists()
        candidate = DisposalCandidate.objects.get(run=run, category="portal_messages")
    assert candidate.state == "destroyed"
    counts = {row["category"]: row["count"] for row in run.certificate.document["categories"]}
    assert counts == {"message_metadata": 1, "portal_messages": 1}
    assert run.certificate.document["skipped"] == {}


def test_cascaded_rows_are_deleted_by_statements_that_return_them(tenant_a):
    """The collector's fast path (attempts, reports, links, codes, replies) is counted too."""
    [message] = new_messages(tenant_a, 1, age=8 * YEAR)
    copy = new_portal_copy(tenant_a, message)
    category = registry.category_get("message_metadata")
    with tenant_context(tenant_a), connection.cursor():
        outcome = category.destroy(category, tenant_a.pk, [str(message.pk)])
    assert outcome.ids == [str(message.pk)]
    assert outcome.removed
    assert outcome.cascaded["delivery.PortalMessage"] == [copy]
    assert len(outcome.cascaded["delivery.PortalReply"]) == 1


def test_a_record_counted_missing_that_is_there_refuses_the_certificate(tenant_a):
    run, _ = _tracking_run(tenant_a, count=2)
    with tenant_context(tenant_a):  # a pending candidate marked missing while its record exists
        candidate = DisposalCandidate.objects.filter(run=run, state="pending").first()
        DisposalCandidate.objects.filter(pk=candidate.pk).update(state="skipped", skip_reason="missing")
        DisposalRun.objects.filter(pk=run.pk).update(skipped_count=1)
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk, batch_size=2)
    run = _halted(tenant_a, run)
    assert "1 tracking events counted as missing are there" in run.halt_reason


def test_a_tombstoned_contacts_external_id_links_are_counted_as_removed_with_it(tenant_a):
    """The links (blind indexes of EHR ids) and the contact's own key leave with the identity:
    counted from the DELETEs."""
    from contacts.models import Contact, ContactExternalId

    contact_id = new_deleted_contact(tenant_a, age=90 * DAY)
    with tenant_context(tenant_a):
        link = ContactExternalId.objects.create(
            tenant=tenant_a, contact_id=contact_id, system="epic", value_index=b"\x01" * 32
        )
        key_id = Contact.objects.get(pk=contact_id).object_key_id
    assert key_id is not None
    category = registry.category_get("contacts")
    with tenant_context(tenant_a), connection.cursor():
        outcome = category.destroy(category, tenant_a.pk, [contact_id])
        assert not ContactExternalId.objects.filter(pk=link.pk).exists()
    assert outcome.ids == [contact_id]
    assert outcome.cascaded == {
        "contacts.ContactExternalId": [str(link.pk)],
        "crypto.ObjectKey": [str(key_id)],
    }
