"""Archive moves, search across live and archived records, audited retrieval; exceptions."""

import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from delivery.models import Message
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from retention import archive, disposal, holds, services
from retention.models import ArchivedRecord, DisposalCandidate

from .helpers import YEAR, message_exists, new_contact, new_messages, officer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)


def test_old_messages_move_to_the_archive_except_held_ones(tenant_a):
    actor = officer(tenant_a)
    patient = new_contact(tenant_a)
    old = new_messages(tenant_a, 3, age=3 * YEAR)
    held = new_messages(tenant_a, 1, age=3 * YEAR, contact=patient)
    young = new_messages(tenant_a, 1, age=YEAR)
    holds.hold_create(
        tenant=tenant_a,
        actor=actor,
        matter="M",
        reason="R",
        counsel="C",
        scope=holds.HoldScope(contact_ids=(patient.pk,)),
    )
    assert archive.archive_due(tenant=tenant_a) == 6  # three messages, each with its content
    assert not any(message_exists(tenant_a, m.pk) for m in old)
    assert message_exists(tenant_a, held[0].pk)
    assert message_exists(tenant_a, young[0].pk)
    with tenant_context(tenant_a):
        assert Message.objects.get(pk=held[0].pk).content_key_id == held[0].content_key_id
        metadata = ArchivedRecord.objects.get(category="message_metadata", record_id=str(old[0].pk))
        assert metadata.content is None  # the content is a record of its own category
        content = ArchivedRecord.objects.get(category="message_content", record_id=str(old[0].pk))
        assert content.content_key_id == old[0].content_key_id  # same content key: still shreddable


def test_search_spans_live_and_archive_and_retrieval_is_audited(tenant_a):
    actor = officer(tenant_a)
    patient = new_contact(tenant_a)
    (archived,) = new_messages(tenant_a, 1, age=3 * YEAR, contact=patient)
    (live,) = new_messages(tenant_a, 1, age=YEAR, contact=patient)
    archive.archive_due(tenant=tenant_a)
    with pytest.raises(ApplicationError, match="reason"):
        archive.record_search(
            tenant=tenant_a, actor=actor, reason="", filters=archive.SearchFilter(contact_id=patient.pk)
        )
    hits = archive.record_search(
        tenant=tenant_a,
        actor=actor,
        reason="Patient access request",
        filters=archive.SearchFilter(contact_id=patient.pk),
    )
    found = {(h.category, h.record_id, h.archived_id is not None) for h in hits}
    assert ("message_metadata", str(archived.pk), True) in found
    assert ("message_content", str(archived.pk), True) in found
    assert ("message_metadata", str(live.pk), False) in found
    metadata = next(h for h in hits if h.archived_id and h.category == "message_metadata")
    record = archive.archive_retrieve(
        tenant=tenant_a, actor=actor, archived_id=metadata.archived_id, reason="Patient access request"
    )
    assert record["snapshot"]["to_address"].endswith("@example.org")
    content = next(h for h in hits if h.archived_id and h.category == "message_content")
    record = archive.archive_retrieve(
        tenant=tenant_a, actor=actor, archived_id=content.archived_id, reason="Patient access request"
    )
    assert record["content"].text == "A1C 7.1"
    with tenant_context(tenant_a):
        actions = list(
            AuditEvent.objects.filter(
                tenant=tenant_a, action__in=["retention.search", "phi.read", "retention.archive_retrieve"]
            ).values_list("action", "reason")
        )
    assert ("retention.archive_retrieve", "Patient access request") in actions
    assert any(a == "phi.read" for a, _ in actions)
    assert any(a == "retention.search" for a, _ in actions)


def test_archived_records_are_destroyed_at_their_maximum(tenant_a):
    actor = officer(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=8 * YEAR)
    archive.archive_due(tenant=tenant_a)
    with tenant_context(tenant_a):
        entries = list(ArchivedRecord.objects.filter(record_id=str(message.pk)))
    assert {e.category for e in entries} == {"message_metadata", "message_content"}
    (run,) = disposal.disposal_plan(tenant=tenant_a, actor=actor)
    disposal.disposal_approve(tenant=tenant_a, actor=officer(tenant_a), run=run)
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)
    from healthmail.crypto.models import ObjectKey

    with tenant_context(tenant_a):
        assert not ArchivedRecord.objects.filter(pk__in=[e.pk for e in entries]).exists()
        assert not ObjectKey.objects.filter(pk=message.content_key_id).exists()


def test_an_approved_exception_keeps_named_records_until_its_date(tenant_a):
    requester, approver = officer(tenant_a), officer(tenant_a)
    kept, gone = new_messages(tenant_a, 2, age=8 * YEAR)
    exception = services.exception_request(
        tenant=tenant_a,
        actor=requester,
        category="message_metadata",
        record_ids=[str(kept.pk)],
        reason="Billing dispute under review",
        extend_until=timezone.localdate() + datetime.timedelta(days=90),
    )
    with pytest.raises(ApplicationError, match="Another compliance officer"):
        services.exception_decide(tenant=tenant_a, actor=requester, exception=exception, approve=True)
    services.exception_decide(tenant=tenant_a, actor=approver, exception=exception, approve=True)
    (run,) = disposal.disposal_plan(tenant=tenant_a, actor=approver)
    assert run.preview["message_metadata"]["excepted"] == 1
    disposal.disposal_approve(tenant=tenant_a, actor=requester, run=run)  # four eyes: not who planned it
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)
    assert message_exists(tenant_a, kept.pk)
    assert not message_exists(tenant_a, gone.pk)
    with tenant_context(tenant_a):
        assert DisposalCandidate.objects.get(record_id=str(kept.pk)).skip_reason == "exception"


def test_exceptions_are_time_limited(tenant_a):
    with pytest.raises(ApplicationError, match="three years"):
        services.exception_request(
            tenant=tenant_a,
            actor=officer(tenant_a),
            category="message_metadata",
            record_ids=["x"],
            reason="r",
            extend_until=timezone.localdate() + datetime.timedelta(days=5 * 365),
        )


def test_deleted_contacts_are_tombstoned_after_their_grace_period(tenant_a):
    from contacts.models import Contact, ContactExternalId

    actor = officer(tenant_a)
    gone = new_contact(tenant_a, deleted_at=timezone.now() - datetime.timedelta(days=90))
    recent = new_contact(tenant_a, deleted_at=timezone.now() - datetime.timedelta(days=5))
    with tenant_context(tenant_a):
        ContactExternalId.objects.create(tenant=tenant_a, contact=gone, system="ehr", value_index=b"x" * 32)
    runs = disposal.disposal_plan(tenant=tenant_a, actor=actor)
    (automatic,) = [r for r in runs if not r.requires_approval]
    assert automatic.status == "approved"  # the contacts policy disposes automatically
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=automatic.pk)
    with tenant_context(tenant_a):
        row = Contact.objects.get(pk=gone.pk)
        assert (row.email, row.first_name, row.clinical, row.email_index, row.clinical_tokens) == (
            None,
            None,
            None,
            None,
            [],
        )
        assert not ContactExternalId.objects.filter(contact_id=gone.pk).exists()
        assert Contact.objects.get(pk=recent.pk).email is not None
        assert not Message.objects.exists()
    assert disposal.disposal_plan(tenant=tenant_a, actor=actor) == []  # a tombstone is not due again
