"""Archiving every archivable category: message content, message metadata (with a portal copy),
portal messages and tracking events move with their encryption intact, are found by search, open
with an audited retrieval, never move while held and are destroyed from the archive at their
maximum (crypto-shredded). The other categories refuse an archive policy with their reason."""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import zipfile

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from delivery.models import EngagementEvent, Message, PortalMessage
from delivery.outbox import message_content
from delivery.portal.services import portal_deliver, portal_open, portal_reply
from healthmail.accounts.roles import Role
from healthmail.crypto.models import ObjectKey
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from retention import archive, disposal, exports, holds, packages, policies
from retention.models import ArchivedRecord
from retention.registry import Category, DefaultPolicy, Source, all_categories, register_category

from .helpers import YEAR, message_exists, new_contact, new_messages, officer, policy_set

pytestmark = pytest.mark.django_db

REPLY = "Fasting glucose this week: 182 mg/dL"
PAGE = "insulin-pump-trial-signup"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)


def _hold(tenant, contact):
    holds.hold_create(
        tenant=tenant,
        actor=officer(tenant),
        matter="Synthetic matter",
        reason="Litigation",
        counsel="Counsel",
        scope=holds.HoldScope(contact_ids=(contact.pk,)),
    )


def _entry(tenant, category: str, record_id) -> ArchivedRecord | None:
    with tenant_context(tenant):
        return ArchivedRecord.objects.filter(category=category, record_id=str(record_id)).first()


def _assert_sealed(tenant, entry: ArchivedRecord, *phi: str) -> None:
    """The raw row holds none of the values in the clear (snapshot and content are ciphertext)."""
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(
            "SELECT snapshot, content, a::text FROM retention_archivedrecord a WHERE id = %s", [entry.pk]
        )
        snapshot, content, row = cursor.fetchone()
    stored = bytes(snapshot) + bytes(content or b"") + row.encode()
    for value in phi:
        assert value.encode() not in stored, f"{value!r} is stored in the clear"


def _search(tenant, actor, contact) -> dict:
    hits = archive.record_search(
        tenant=tenant,
        actor=actor,
        reason="Records request",
        filters=archive.SearchFilter(contact_id=contact.pk),
    )
    return {(h.category, h.record_id): h for h in hits}


def _retrieve(tenant, actor, hit) -> dict:
    record = archive.archive_retrieve(
        tenant=tenant, actor=actor, archived_id=hit.archived_id, reason="Records request"
    )
    with tenant_context(tenant):
        actions = set(
            AuditEvent.objects.filter(tenant=tenant, target_id=str(hit.archived_id)).values_list(
                "action", flat=True
            )
        )
    assert {"phi.read", "retention.archive_retrieve"} <= actions
    return record


def _dispose(tenant, actor) -> None:
    for run in disposal.disposal_plan(tenant=tenant, actor=actor):
        if run.status == "awaiting_approval":
            disposal.disposal_approve(tenant=tenant, actor=officer(tenant), run=run)
        disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=run.pk)


def _keys_exist(tenant, *key_ids) -> bool:
    with tenant_context(tenant):
        return ObjectKey.objects.filter(pk__in=key_ids).count() == len(key_ids)


def _portal_copy(tenant, message, *, closed: bool = True, reply: bool = True) -> PortalMessage:
    """The message's portal copy (with a reply from the patient), closed or still open."""
    with tenant_context(tenant):
        portal_deliver(message, message_content(message))
        portal = PortalMessage.objects.get(message_id=message.pk)
        if reply:
            portal_reply(portal_message=portal, body=REPLY)
        if closed:
            PortalMessage.objects.filter(pk=portal.pk).update(
                expires_at=timezone.now() - datetime.timedelta(days=1)
            )
        return PortalMessage.objects.get(pk=portal.pk)


def _event(tenant, *, contact, message=None, age=3 * YEAR) -> EngagementEvent:
    with tenant_context(tenant):
        return EngagementEvent.objects.create(
            tenant=tenant,
            message=message,
            contact=contact,
            kind=EngagementEvent.Kind.PAGE_VIEW if message is None else EngagementEvent.Kind.CLICK,
            label=PAGE,
            source_type="campaign",
            source_id="c-1",
            occurred_at=timezone.now() - age,
        )


# --- message content ---------------------------------------------------------------------------------


def test_message_content_moves_alone_while_the_metadata_stays_live(tenant_a):
    actor = officer(tenant_a)
    policy_set(tenant_a, "message_metadata", archive_after_days=5 * 365)
    patient, kept_patient = new_contact(tenant_a), new_contact(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=3 * YEAR, contact=patient)
    (held,) = new_messages(tenant_a, 1, age=3 * YEAR, contact=kept_patient)
    _hold(tenant_a, kept_patient)

    assert archive.archive_due(tenant=tenant_a) == 1
    with tenant_context(tenant_a):
        live = Message.objects.get(pk=message.pk)
        assert (live.content, live.content_key_id) == (None, None)
        assert message_content(Message.objects.get(pk=held.pk)).text == "A1C 7.1"  # held: not moved
    assert _entry(tenant_a, "message_content", held.pk) is None
    entry = _entry(tenant_a, "message_content", message.pk)
    assert (entry.content_key_id, entry.contact_id) == (message.content_key_id, patient.pk)
    _assert_sealed(tenant_a, entry, "A1C 7.1", "Lab result", "Your results")

    found = _search(tenant_a, actor, patient)
    assert found[("message_content", str(message.pk))].archived_id == entry.pk
    assert found[("message_metadata", str(message.pk))].archived_id is None  # still live
    assert (
        _retrieve(tenant_a, actor, found[("message_content", str(message.pk))])["content"].text == "A1C 7.1"
    )


def test_archived_message_content_is_crypto_shredded_at_its_maximum(tenant_a):
    actor = officer(tenant_a)
    policy_set(tenant_a, "message_metadata", archive_after_days=None)
    (message,) = new_messages(tenant_a, 1, age=8 * YEAR)
    archive.archive_due(tenant=tenant_a)
    entry = _entry(tenant_a, "message_content", message.pk)
    assert entry is not None
    assert message_exists(tenant_a, message.pk)

    _dispose(tenant_a, actor)
    assert _entry(tenant_a, "message_content", message.pk) is None
    assert not _keys_exist(tenant_a, entry.content_key_id)


# --- message metadata with a portal copy ---------------------------------------------------------------


def test_a_message_with_a_closed_portal_copy_moves_with_it_and_each_keeps_its_category(tenant_a):
    actor = officer(tenant_a)
    policy_set(tenant_a, "message_content", archive_after_days=None)
    policy_set(tenant_a, "portal_messages", archive_after_days=None)
    patient = new_contact(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=3 * YEAR, contact=patient)
    portal = _portal_copy(tenant_a, message)
    event = _event(tenant_a, contact=patient, message=message)
    with tenant_context(tenant_a):
        reply_key = portal.replies.get().content_key_id
        address = Message.objects.get(pk=message.pk).to_address

    assert archive.archive_due(tenant=tenant_a) == 4  # metadata, content, portal copy, event
    assert not message_exists(tenant_a, message.pk)
    with tenant_context(tenant_a):
        assert not PortalMessage.objects.filter(pk=portal.pk).exists()
        assert not EngagementEvent.objects.filter(pk=event.pk).exists()
    metadata = _entry(tenant_a, "message_metadata", message.pk)
    copy = _entry(tenant_a, "portal_messages", portal.pk)
    # The portal copy keeps its own category and its own clock (the message's creation), and its keys.
    assert (copy.clock_at, copy.contact_id, copy.source_ref) == (
        metadata.clock_at,
        patient.pk,
        "campaign:c-1",
    )
    assert (copy.content_key_id, copy.part_key_ids) == (portal.content_key_id, [reply_key])
    assert _keys_exist(tenant_a, portal.content_key_id, reply_key, message.content_key_id)
    _assert_sealed(tenant_a, copy, "A1C 7.1", "Your results", REPLY)
    _assert_sealed(tenant_a, metadata, address)
    _assert_sealed(tenant_a, _entry(tenant_a, "tracking_events", event.pk), PAGE)

    found = _search(tenant_a, actor, patient)
    for key, record_id in [
        ("message_metadata", message.pk),
        ("message_content", message.pk),
        ("portal_messages", portal.pk),
        ("tracking_events", event.pk),
    ]:
        assert found[(key, str(record_id))].archived_id is not None, key
    record = _retrieve(tenant_a, actor, found[("portal_messages", str(portal.pk))])
    assert record["content"].subject == "Your results"
    assert [r["text"] for r in record["replies"]] == [REPLY]
    assert record["snapshot"]["message"] == str(message.pk)
    assert (
        _retrieve(tenant_a, actor, found[("message_metadata", str(message.pk))])["snapshot"]["to_address"]
        == address
    )


def test_an_open_portal_copy_keeps_its_message_live_until_it_closes(tenant_a):
    (message,) = new_messages(tenant_a, 1, age=3 * YEAR)
    portal = _portal_copy(tenant_a, message, closed=False, reply=False)
    archive.archive_due(tenant=tenant_a)
    assert message_exists(tenant_a, message.pk)
    assert _entry(tenant_a, "message_metadata", message.pk) is None
    with tenant_context(tenant_a):
        portal = PortalMessage.objects.get(pk=portal.pk)
        assert portal_open(portal_message=portal, count_read=False).text == "A1C 7.1"  # still readable

    with tenant_context(tenant_a):
        PortalMessage.objects.filter(pk=portal.pk).update(recalled_at=timezone.now())
    archive.archive_due(tenant=tenant_a)
    assert not message_exists(tenant_a, message.pk)
    assert _entry(tenant_a, "portal_messages", portal.pk) is not None


def test_a_portal_copy_archived_alone_leaves_its_message_live_and_both_are_disposed_later(tenant_a):
    actor = officer(tenant_a)
    policy_set(tenant_a, "message_metadata", archive_after_days=None)
    (message,) = new_messages(tenant_a, 1, age=8 * YEAR)
    portal = _portal_copy(tenant_a, message)
    with tenant_context(tenant_a):
        reply_key = portal.replies.get().content_key_id

    archive.archive_due(tenant=tenant_a)
    assert message_exists(tenant_a, message.pk)  # no foreign key broken: the message stays as it was
    copy = _entry(tenant_a, "portal_messages", portal.pk)
    assert copy.part_key_ids == [reply_key]
    with tenant_context(tenant_a):
        assert not PortalMessage.objects.filter(pk=portal.pk).exists()

    _dispose(tenant_a, actor)
    assert not message_exists(tenant_a, message.pk)  # live metadata destroyed in place
    assert _entry(tenant_a, "portal_messages", portal.pk) is None  # the archived copy too
    with tenant_context(tenant_a):
        assert not ObjectKey.objects.filter(pk__in=[portal.content_key_id, reply_key]).exists()


def test_archived_message_with_portal_copy_is_destroyed_from_the_archive(tenant_a):
    actor = officer(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=8 * YEAR)
    portal = _portal_copy(tenant_a, message)
    with tenant_context(tenant_a):
        reply_key = portal.replies.get().content_key_id
    archive.archive_due(tenant=tenant_a)
    assert _entry(tenant_a, "message_metadata", message.pk) is not None

    _dispose(tenant_a, actor)
    with tenant_context(tenant_a):
        assert not ArchivedRecord.objects.exists()
        assert not ObjectKey.objects.filter(
            pk__in=[message.content_key_id, portal.content_key_id, reply_key]
        ).exists()


def test_held_portal_copies_and_their_messages_never_move(tenant_a):
    patient = new_contact(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=3 * YEAR, contact=patient)
    portal = _portal_copy(tenant_a, message)
    _hold(tenant_a, patient)
    assert archive.archive_due(tenant=tenant_a) == 0
    assert message_exists(tenant_a, message.pk)
    with tenant_context(tenant_a):
        assert PortalMessage.objects.filter(pk=portal.pk).exists()
    assert holds.holds_for(portal)


def test_a_held_event_keeps_its_message_live(tenant_a):
    """An event's own contact can be held while its message (no contact) is not: moving the message
    would move the held event, so the message stays."""
    patient = new_contact(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=3 * YEAR)
    with tenant_context(tenant_a):
        Message.objects.filter(pk=message.pk).update(contact=None)
    event = _event(tenant_a, contact=patient, message=message)
    _hold(tenant_a, patient)
    archive.archive_due(tenant=tenant_a)
    assert _entry(tenant_a, "message_content", message.pk) is not None  # no contact: not held
    assert message_exists(tenant_a, message.pk)
    with tenant_context(tenant_a):
        assert EngagementEvent.objects.get(pk=event.pk).message_id == message.pk


# --- tracking events -----------------------------------------------------------------------------------


def test_tracking_events_move_to_the_archive_and_are_destroyed_there(tenant_a):
    actor = officer(tenant_a)
    policy_set(tenant_a, "tracking_events", archive_after_days=365)
    patient, kept_patient = new_contact(tenant_a), new_contact(tenant_a)
    event = _event(tenant_a, contact=patient, age=18 * datetime.timedelta(days=30))
    held = _event(tenant_a, contact=kept_patient, age=18 * datetime.timedelta(days=30))
    young = _event(tenant_a, contact=patient, age=datetime.timedelta(days=30))
    _hold(tenant_a, kept_patient)

    assert archive.archive_due(tenant=tenant_a) == 1
    with tenant_context(tenant_a):
        assert set(EngagementEvent.objects.values_list("pk", flat=True)) == {held.pk, young.pk}
    entry = _entry(tenant_a, "tracking_events", event.pk)
    assert (entry.contact_id, entry.source_ref) == (patient.pk, "campaign:c-1")
    _assert_sealed(tenant_a, entry, PAGE)

    found = _search(tenant_a, actor, patient)
    assert found[("tracking_events", str(event.pk))].archived_id == entry.pk
    assert found[("tracking_events", str(young.pk))].archived_id is None
    assert _retrieve(tenant_a, actor, found[("tracking_events", str(event.pk))])["snapshot"]["label"] == PAGE

    _dispose(tenant_a, actor)  # nothing is past the two-year maximum yet
    assert _entry(tenant_a, "tracking_events", event.pk) is not None
    policy_set(tenant_a, "tracking_events", max_retention_days=400)
    _dispose(tenant_a, actor)
    assert _entry(tenant_a, "tracking_events", event.pk) is None
    with tenant_context(tenant_a):
        assert EngagementEvent.objects.filter(pk=held.pk).exists()


def test_archive_as_the_action_at_the_maximum_moves_records_instead_of_destroying_them(tenant_a):
    actor = officer(tenant_a)
    policy_set(tenant_a, "tracking_events", max_retention_days=365, action="archive")
    patient = new_contact(tenant_a)
    event = _event(tenant_a, contact=patient, age=2 * YEAR)
    _dispose(tenant_a, actor)
    with tenant_context(tenant_a):
        assert EngagementEvent.objects.filter(pk=event.pk).exists()  # not destroyed
    assert archive.archive_due(tenant=tenant_a) == 1
    assert _entry(tenant_a, "tracking_events", event.pk) is not None


# --- categories that never move ------------------------------------------------------------------------

NOT_ARCHIVABLE = {
    "audit_events": "append-only and tamper-evident",
    "consent_records": "append-only",
    "contacts": "tombstoned in place",
    "exports": "decrypted copy",
    "webhook_logs": "operational logs",
    "destruction_certificates": "proof of disposal",
}


def test_every_category_is_archivable_or_says_why_not():
    archivable = {c.key for c in all_categories() if c.archive is not None}
    assert archivable == {"message_content", "message_metadata", "portal_messages", "tracking_events"}
    assert {c.key for c in all_categories() if c.archive is None} == set(NOT_ARCHIVABLE)
    with pytest.raises(ValueError, match="reason it is never archived"):
        register_category(
            Category(
                key="undecided",
                label="Undecided",
                app="tests",
                description="",
                sources=(Source("delivery.WebhookDelivery", clock="r.created_at"),),
                default=DefaultPolicy(
                    min_days=0, max_days=1, action="destroy", approval_required=False, rationale=""
                ),
            )
        )


@pytest.mark.parametrize(("category", "reason"), sorted(NOT_ARCHIVABLE.items()))
@pytest.mark.parametrize("change", [{"archive_after_days": 30}, {"action": "archive"}])
def test_a_policy_cannot_archive_a_category_that_never_moves(tenant_a, category, reason, change):
    policies.policies_ensure_defaults(tenant=tenant_a)
    current = policies.policy_in_force(tenant=tenant_a, category=category)
    data = policies.PolicyInput(
        min_retention_days=current.min_retention_days,
        max_retention_days=current.max_retention_days or current.min_retention_days + 365,
        action=current.action,
        approval_required=True,
        rationale="Test policy",
        reason="Test",
        legal_basis=current.legal_basis,
    )
    with pytest.raises(ApplicationError, match=f"never moved to the archive: .*{reason}") as refused:
        policies.policy_propose(
            tenant=tenant_a,
            actor=officer(tenant_a),
            category=category,
            data=dataclasses.replace(data, **change),
        )
    assert refused.value.code == "archive"


def test_the_policy_page_shows_why_a_category_cannot_be_archived(member_client):
    page = member_client(Role.COMPLIANCE_OFFICER)
    response = page.post(
        reverse("retention:policy_detail", args=["audit_events"]),
        {
            "min_retention_days": 6 * 365,
            "archive_after_days": 365,
            "action": "review",
            "rationale": "Move old audit events out of the way",
            "reason": "Test",
        },
    )
    assert "never moved to the archive" in response.content.decode()
    assert "append-only and tamper-evident" in response.content.decode()


def test_the_retrieval_page_opens_an_archived_portal_copy_with_its_replies(member_client, tenant_a):
    page = member_client(Role.COMPLIANCE_OFFICER)
    (message,) = new_messages(tenant_a, 1, age=3 * YEAR)
    portal = _portal_copy(tenant_a, message)
    archive.archive_due(tenant=tenant_a)
    entry = _entry(tenant_a, "portal_messages", portal.pk)
    response = page.post(
        reverse("retention:archive_retrieve", args=[entry.pk]), {"reason": "Records request"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert "A1C 7.1" in body
    assert REPLY in body


def test_an_evidence_export_decrypts_archived_content_and_portal_replies(tenant_a):
    actor = officer(tenant_a)
    policy_set(tenant_a, "message_content", archive_after_days=None)
    policy_set(tenant_a, "portal_messages", archive_after_days=None)
    patient = new_contact(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=3 * YEAR, contact=patient)
    portal = _portal_copy(tenant_a, message)
    assert archive.archive_due(tenant=tenant_a) == 3  # metadata, content, portal copy

    export = exports.evidence_export_create(
        tenant=tenant_a,
        actor=actor,
        purpose="Subpoena",
        recipient="Counsel",
        scope=exports.ExportScope(contact_ids=(patient.pk,)),
    )
    _, content = exports.evidence_export_download(tenant=tenant_a, actor=actor, export_id=export.pk)
    assert packages.verify(content)[0] == []
    archived = {
        (row["category"], row["record_id"]): row
        for row in json.loads(zipfile.ZipFile(io.BytesIO(content)).read("records/archived.json"))
    }
    copy = archived[("portal_messages", str(portal.pk))]
    assert (copy["content"]["subject"], copy["content"]["text"]) == ("Your results", "A1C 7.1")
    assert [reply["text"] for reply in copy["replies"]] == [REPLY]
    assert archived[("message_content", str(message.pk))]["content"]["text"] == "A1C 7.1"
    assert archived[("message_metadata", str(message.pk))]["snapshot"]["to_address"].endswith("@example.org")
    with tenant_context(tenant_a):  # stored sealed; the decrypted copy exists only in the package
        assert b"A1C 7.1" not in bytes(ArchivedRecord.objects.get(record_id=str(portal.pk)).content)
