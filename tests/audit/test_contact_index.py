"""The contacts an audit event concerns are part of the row: chained, append-only, exported."""

import io
import json
import uuid
import zipfile

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit import chain, exports
from audit import services as audit
from audit.models import AuditEvent
from audit.selectors import EventFilter
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.factories import TenantFactory

from .test_chain import _owner_sql, _problem

# Fixed ids: parametrize ids must be the same in every xdist worker.
PATIENT = uuid.UUID("6f1c2b1e-3d4a-4f5b-9c8d-7e6f5a4b3c21")
OTHER = uuid.UUID("0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d")


@pytest.fixture(autouse=True)
def checkpoint_dir(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")


@pytest.fixture
def sealed(committed_db):
    tenant = TenantFactory(slug=f"index-{uuid.uuid4().hex[:8]}")
    actor = Actor.system("test")
    audit.record(actor=actor, action="test.plain", tenant=tenant)
    audit.record(actor=actor, action="phi.read", tenant=tenant, contacts=[OTHER, PATIENT, PATIENT])
    audit.record(actor=actor, action="contact.update", tenant=tenant, target=("contacts.contact", str(OTHER)))
    while chain.seal_pending(tenant.pk):
        pass
    return tenant


def _event(tenant, action: str) -> AuditEvent:
    with tenant_context(tenant):
        return AuditEvent.objects.get(tenant=tenant, action=action)


def test_contacts_are_recorded_sorted_once_and_a_contact_target_counts(sealed):
    assert _event(sealed, "phi.read").contact_ids == sorted([OTHER, PATIENT])
    assert _event(sealed, "contact.update").contact_ids == [OTHER]
    assert _event(sealed, "test.plain").contact_ids == []
    assert chain.verify_chain(sealed.pk).ok


def test_an_event_without_contacts_hashes_as_before_the_column_existed(sealed):
    """Old chains (written before contact_ids) still verify: an empty list is not hashed."""
    with tenant_context(sealed):
        row = AuditEvent.objects.filter(action="test.plain").values(*chain.CHAINED_FIELDS).get()
    without_column = {k: v for k, v in row.items() if k != "contact_ids"}
    assert chain.canonical(row) == chain.canonical(without_column)
    assert b"contact_ids" not in chain.canonical(row)


def test_the_application_cannot_change_the_contacts_of_an_event(sealed):
    event = _event(sealed, "phi.read")
    with tenant_context(sealed), connection.cursor() as cursor:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute("UPDATE audit_auditevent SET contact_ids = '{}' WHERE id = %s", [event.pk])


def test_the_app_cannot_seal_a_row_and_change_its_contacts_at_once(committed_db):
    tenant = TenantFactory(slug=f"index-{uuid.uuid4().hex[:8]}")
    event = audit.record(actor=Actor.system("test"), action="phi.read", tenant=tenant, contacts=[PATIENT])
    with tenant_context(tenant), connection.cursor() as cursor:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute(
                "UPDATE audit_auditevent SET seq = 1, hash = 'x', sealed_at = now(), contact_ids = '{}'"
                " WHERE id = %s",
                [event.pk],
            )


@pytest.mark.parametrize("new_value", ["{}", f"{{{OTHER}}}", f"{{{PATIENT},{OTHER},{uuid.UUID(int=7)}}}"])
def test_removing_or_adding_a_contact_breaks_the_chain_at_that_row(sealed, new_value):
    event = _event(sealed, "phi.read")
    _owner_sql("UPDATE audit_auditevent SET contact_ids = %s WHERE id = %s", [new_value, event.pk])
    assert f"seq {event.seq} " in _problem(sealed)


def test_adding_a_contact_to_an_event_without_any_breaks_the_chain(sealed):
    event = _event(sealed, "test.plain")
    _owner_sql("UPDATE audit_auditevent SET contact_ids = %s WHERE id = %s", [f"{{{PATIENT}}}", event.pk])
    assert f"seq {event.seq} " in _problem(sealed)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_exports_carry_the_contacts_and_verify(sealed, fmt):
    export = exports.audit_export(
        actor=Actor.system("test"), tenant=sealed, filters=EventFilter(contact=PATIENT), fmt=fmt
    )
    assert export.row_count == 1
    assert exports.verify_export(export.content) == []
    archive = zipfile.ZipFile(io.BytesIO(export.content))
    data = archive.read(f"events.{fmt}")
    assert str(OTHER).encode() in data
    assert str(PATIENT).encode() in data
    # Dropping a contact from the exported row breaks that row's own link, whatever the manifest says.
    (row,) = exports._parse(data.replace(str(OTHER).encode(), str(uuid.UUID(int=9)).encode()), fmt)
    assert chain.link(row["previous_hash"], row) != row["hash"]
    (row,) = exports._parse(data, fmt)
    assert chain.link(row["previous_hash"], row) == row["hash"]


def test_export_manifest_states_the_filter(sealed):
    export = exports.audit_export(
        actor=Actor.system("test"),
        tenant=sealed,
        filters=EventFilter(contact=PATIENT, through_id=10**9),
        fmt="json",
    )
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(export.content)).read("manifest.json"))
    assert manifest["filters"] == {"contact": str(PATIENT), "through_id": str(10**9)}
    assert manifest["row_count"] == 1
