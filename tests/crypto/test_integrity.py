"""Integrity errors contained and reported (issue 25): a planted undecryptable row shows as damaged
while the rest of the list page and the API answer work, a critical alert names it, key rotation
skips it, reports it and finishes the rest (exit status 1), and `integrity_scan` lists every
damaged record, an index swapped in the database included."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.alerts import INTEGRITY_DAMAGED
from audit.models import Alert
from contacts.services import ContactInput, contact_upsert_many
from healthmail.accounts.roles import Role
from healthmail.crypto import envelope
from healthmail.crypto.rotation import remaining
from healthmail.tenants.context import tenant_context
from tests.factories import TenantFactory
from tests.testapp.models import SecretNote

from ..contacts.conftest import SYSTEM

pytestmark = pytest.mark.django_db


def _contacts(tenant, count: int) -> list[uuid.UUID]:
    inputs = [ContactInput(email=f"integrity.{n}@example.org", first_name=f"Person{n}") for n in range(count)]
    results = contact_upsert_many(tenant=tenant, actor=SYSTEM, inputs=inputs, source="test")
    return [result.contact_id for result in results]


def _corrupt(tenant, table: str, object_id, column: str) -> None:
    """Flip one byte of a stored ciphertext, as an edit in the database would."""
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {column} = set_byte({column}, 29, get_byte({column}, 29) # 1) "  # noqa: S608 - test constants
            "WHERE id = %s",
            [object_id],
        )


def _alerts(tenant) -> list[Alert]:
    with tenant_context(tenant):
        return list(Alert.objects.filter(rule=INTEGRITY_DAMAGED))


def test_a_damaged_contact_is_shown_as_damaged_and_the_list_page_works(tenant_a, member_client):
    ids = _contacts(tenant_a, 3)
    _corrupt(tenant_a, "contacts_contact", ids[1], "first_name")
    page = member_client(Role.COMPLIANCE_OFFICER).get("/contacts/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Damaged record" in html
    assert "Person0" in html
    assert "Person2" in html
    (alert,) = _alerts(tenant_a)
    assert alert.severity == Alert.Severity.CRITICAL
    assert str(ids[1]) in alert.summary
    assert "first_name" in alert.summary
    assert "Person1" not in alert.summary
    assert "integrity.1" not in alert.summary


def test_the_api_list_marks_the_damaged_contact_and_answers_the_rest(tenant_a, api, issue_key):
    ids = _contacts(tenant_a, 3)
    _corrupt(tenant_a, "contacts_contact", ids[0], "email")
    answer = api(issue_key(scopes=["contacts:read", "contacts:phi"])).get("/api/v1/contacts")
    assert answer.status_code == 200, answer.content
    rows = {row["id"]: row for row in answer.json()["results"]}
    assert rows[str(ids[0])]["damaged"] is True
    assert rows[str(ids[0])]["email"] == ""
    assert {rows[str(i)]["damaged"] for i in ids[1:]} == {False}
    assert rows[str(ids[2])]["first_name"] == "Person2"
    assert len(_alerts(tenant_a)) == 1
    detail = api(issue_key(scopes=["contacts:read", "contacts:phi"])).get(f"/api/v1/contacts/{ids[0]}")
    assert detail.status_code == 200
    assert detail.json()["damaged"] is True


def test_the_alert_is_raised_once_per_record(tenant_a, member_client):
    ids = _contacts(tenant_a, 2)
    _corrupt(tenant_a, "contacts_contact", ids[0], "first_name")
    client = member_client(Role.COMPLIANCE_OFFICER)
    client.get("/contacts/")
    client.get("/contacts/")
    assert len(_alerts(tenant_a)) == 1


def test_rotation_skips_a_damaged_row_reports_it_and_rotates_the_rest(committed_db):
    tenant = TenantFactory(slug=f"dmg-{uuid.uuid4().hex[:8]}")
    with tenant_context(tenant):
        notes = [SecretNote.objects.create(tenant=tenant, body=f"note-{n}") for n in range(5)]
    _corrupt(tenant, "testapp_secretnote", notes[2].pk, "body")
    out, err = io.StringIO(), io.StringIO()
    for _run in range(2):  # a rerun skips and reports it again, and still finishes
        with pytest.raises(CommandError, match="1 damaged record"):
            call_command(
                "rotate_keys", "--tenant", tenant.slug, "--settle-seconds", "0", stdout=out, stderr=err
            )
    assert f"testapp_secretnote {notes[2].pk}" in err.getvalue()
    version = envelope.key_version_of(_stored_body(tenant, notes[0].pk))
    assert version == 2  # the rerun resumed the same rotation rather than adding versions
    assert remaining(tenant.pk, version)["testapp_secretnote"] == 1  # only the damaged one is left
    with tenant_context(tenant):
        bodies = {n.pk: SecretNote.objects.get(pk=n.pk).body for n in notes if n.pk != notes[2].pk}
    assert bodies == {n.pk: n.body for n in notes if n.pk != notes[2].pk}
    (alert,) = _alerts(tenant)
    assert str(notes[2].pk) in alert.summary


def _stored_body(tenant, note_id) -> bytes:
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("SELECT body FROM testapp_secretnote WHERE id = %s", [note_id])
        return bytes(cursor.fetchone()[0])


def test_integrity_scan_lists_every_damaged_record(tenant_a, tenant_b):
    ids = _contacts(tenant_a, 3)
    _contacts(tenant_b, 2)
    _corrupt(tenant_a, "contacts_contact", ids[0], "email")
    with tenant_context(tenant_a), connection.cursor() as cursor:  # an index no address of its row has
        cursor.execute("UPDATE contacts_contact SET email_index = %s WHERE id = %s", [b"\x00" * 32, ids[1]])
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 damaged record"):
        call_command("integrity_scan", "--tenant", tenant_a.slug, "--alert", stdout=out)
    lines = out.getvalue().splitlines()
    assert any(str(ids[0]) in line and "email does not decrypt" in line for line in lines)
    assert any(str(ids[1]) in line and "email index does not match" in line for line in lines)
    assert len(_alerts(tenant_a)) == 2
    clean = io.StringIO()
    call_command("integrity_scan", "--tenant", tenant_b.slug, stdout=clean)
    assert "No damaged records" in clean.getvalue()


def test_integrity_scan_names_an_object_key_that_no_longer_opens(tenant_a, settings, tmp_path):
    from healthmail.crypto import objects

    settings.HEALTHMAIL_KEYSTORE_DIR = str(tmp_path / "keystore")
    good, bad = objects.object_key_create(tenant=tenant_a), objects.object_key_create(tenant=tenant_a)
    _corrupt(tenant_a, "crypto_objectkey", bad.pk, "wrapped_key")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 damaged record"):
        call_command("integrity_scan", "--tenant", tenant_a.slug, stdout=out)
    assert f"crypto_objectkey\t{bad.pk}" in out.getvalue()
    assert str(good.pk) not in out.getvalue()
