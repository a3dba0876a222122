"""The outbox's one-statement insert (healthmail.bulk.insert_unnest) writes the same rows as Django's
bulk_create: every column, encrypted ones included, and under the same row-level security."""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError, connection, transaction

from delivery.models import Message
from delivery.outbox import message_content
from healthmail.bulk import insert_unnest
from healthmail.crypto.errors import DecryptionError
from healthmail.tenants.context import tenant_context

from .outbox_helpers import PHI_BODY, make_message

pytestmark = pytest.mark.django_db


def _raw(message_id) -> dict:
    columns = [f.column for f in Message._meta.concrete_fields]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(columns)} FROM delivery_message WHERE id = %s", [message_id])  # noqa: S608
        return dict(zip(columns, cursor.fetchone(), strict=True))


def _twin(message: Message) -> Message:
    """The same unsaved row with another id (and Message-ID), as message_enqueue_many builds it."""
    values = {f.attname: getattr(message, f.attname) for f in Message._meta.concrete_fields}
    values |= {"id": uuid.uuid4(), "message_id": f"<{uuid.uuid4().hex}@twin.test>"}
    values.pop("to_address")
    twin = Message(**values)
    twin.to_address = message.to_address
    return twin


def test_rows_match_bulk_create_column_by_column(tenant_a):
    enqueued = make_message(tenant_a, address="zebediah@patients.example")
    with tenant_context(tenant_a):
        original = Message.objects.get(pk=enqueued.pk)
        by_orm, by_unnest = _twin(original), _twin(original)
        Message.objects.bulk_create([by_orm])
        insert_unnest([by_unnest])
        rows = {name: _raw(m.pk) for name, m in (("orm", by_orm), ("unnest", by_unnest))}
        different = {
            column
            for column in rows["orm"]
            if rows["orm"][column] != rows["unnest"][column]
            and column not in {"id", "message_id", "to_address", "created_at", "updated_at"}
        }
        assert different == set()
        assert bytes(rows["unnest"]["to_address"]) != bytes(rows["orm"]["to_address"])  # own nonce, own AAD
        stored = Message.objects.get(pk=by_unnest.pk)
        assert stored.to_address == "zebediah@patients.example"
        assert stored.evidence == original.evidence
        assert stored.state == Message.State.QUEUED
        assert b"zebediah" not in bytes(rows["unnest"]["to_address"])


def test_enqueued_content_opens_and_address_is_bound_to_its_row(tenant_a):
    message = make_message(tenant_a)
    with tenant_context(tenant_a):
        stored = Message.objects.get(pk=message.pk)
        assert message_content(stored).text == PHI_BODY
        other = make_message(tenant_a)
        with connection.cursor() as cursor:  # a ciphertext copied to another row must not open
            cursor.execute(
                "UPDATE delivery_message SET to_address ="
                " (SELECT to_address FROM delivery_message WHERE id = %s) WHERE id = %s",
                [message.pk, other.pk],
            )
        with pytest.raises(DecryptionError):
            _ = Message.objects.get(pk=other.pk).to_address


def test_row_level_security_refuses_rows_of_another_tenant(tenant_a, tenant_b):
    enqueued = make_message(tenant_a)
    with tenant_context(tenant_a):
        foreign = _twin(Message.objects.get(pk=enqueued.pk))
    with tenant_context(tenant_b), pytest.raises(DatabaseError), transaction.atomic():
        insert_unnest([foreign])


def test_models_without_a_client_side_primary_key_are_refused():
    from audit.models import AuditEvent

    with pytest.raises(ValueError, match="primary key default"):
        insert_unnest([AuditEvent()])
