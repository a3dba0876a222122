"""Contacts crypto-shredded on deletion (issue 25, point 1): each contact's fields are sealed under
its own key, wrapped by the tenant's epoch key. Deleting the contact destroys that key; after the
next epoch rotation a `pg_dump` taken before the deletion, restored into a fresh database, opens
nothing of that contact with the current keys (master key ring, key store). Other contacts stay
readable in the live database; a legal hold keeps a deleted contact's key until disposal."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from contacts.models import Contact
from contacts.normalize import ContactInput
from contacts.services import contact_delete, contact_upsert_many
from healthmail.actors import Actor
from healthmail.crypto import access, envelope, epochs, objects, rotation, rowkeys
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.fields import row_aad
from healthmail.crypto.models import ObjectKey
from healthmail.tenants.context import tenant_context
from retention import holds
from tests.crypto.test_shred_backups import _drop, _dump, _restore
from tests.factories import BaaFactory, TenantFactory
from tests.retention.helpers import officer

ACTOR = Actor.system("tests")
TABLE = Contact._meta.db_table
GRANT = access.Grant("contacts.contact", frozenset({"email", "first_name", "clinical"}), None)


@pytest.fixture(autouse=True)
def key_store_dir(settings, tmp_path):
    settings.HEALTHMAIL_KEYSTORE_DIR = str(tmp_path / "keystore")


def _patients(tenant, *names: str) -> dict[str, Contact]:
    inputs = [
        ContactInput(email=f"{name}@patients.test", first_name=name.title(), clinical={"conditions": ["I10"]})
        for name in names
    ]
    results = contact_upsert_many(tenant=tenant, actor=ACTOR, inputs=inputs, source="test")
    with tenant_context(tenant):
        stored = {c.pk: c for c in Contact.objects.filter(pk__in=[r.contact_id for r in results])}
    return {name: stored[result.contact_id] for name, result in zip(names, results, strict=True)}


def _restored_contact(database: str, contact_id) -> tuple[dict, tuple | None]:
    """The contact's encrypted columns and its key row, as the restored dump holds them."""
    owner = settings.DATABASES["owner"]
    columns = ["email", "first_name", "clinical"]
    with psycopg.connect(
        host=owner["HOST"],
        port=owner["PORT"],
        user=owner["USER"],
        password=owner["PASSWORD"] or None,
        dbname=database,
    ) as restored:
        row = restored.execute(
            f"SELECT object_key_id, {', '.join(columns)} FROM {TABLE} WHERE id = %s",  # noqa: S608
            [contact_id],
        ).fetchone()
        key = restored.execute(
            "SELECT id, epoch_id, wrapped_key FROM crypto_objectkey WHERE id = %s", [row[0]]
        ).fetchone()
    return dict(zip(columns, row[1:], strict=True)), key


def _anything_opens(tenant_id, contact_id, sealed: dict, key_row: tuple | None) -> bool:
    """Whether any restored column decrypts with the current keys: through the live database's key
    (what the header names), or through the restored key row unwrapped with the current key store."""
    for column, blob in sealed.items():
        aad = row_aad(tenant_id, TABLE, column, contact_id)
        try:
            rowkeys.open_field(tenant_id, bytes(blob), aad)
        except DecryptionError:
            pass
        else:
            return True
        if key_row is not None:
            try:
                epochs.object_key_unwrap(
                    tenant_id=tenant_id,
                    object_key_id=key_row[0],
                    epoch_id=key_row[1],
                    wrapped=bytes(key_row[2]),
                )
            except DecryptionError:
                continue
            return True
    return False


def test_a_deleted_contact_opens_nowhere_not_even_in_a_dump_taken_before(committed_db, tmp_path):
    tenant = TenantFactory(slug=f"cshred-{uuid.uuid4().hex[:8]}")
    BaaFactory(tenant=tenant)
    people = _patients(tenant, "gone", "kept")
    gone, kept = people["gone"], people["kept"]
    assert gone.object_key_id
    assert kept.object_key_id
    assert gone.object_key_id != kept.object_key_id
    dump = tmp_path / "before-delete.dump"
    _dump(dump)

    contact_delete(tenant=tenant, actor=ACTOR, contact=gone, reason="patient request")
    with tenant_context(tenant):
        assert not ObjectKey.objects.filter(pk=gone.object_key_id).exists()
        after = Contact.objects.get(pk=gone.pk)
        assert (after.object_key_id, after.email_index) == (None, None)
    rotation_result = objects.epochs_rotate(tenant)
    assert rotation_result.destroyed  # the epoch that wrapped the deleted contact's key

    with tenant_context(tenant), access.granted(GRANT):
        live = Contact.objects.get(pk=kept.pk)
        assert (live.email, live.first_name) == ("kept@patients.test", "Kept")

    database = _restore(dump)
    try:
        sealed, key_row = _restored_contact(database, gone.pk)
    finally:
        _drop(database)
    assert sealed["email"] is not None
    assert key_row is not None
    assert rowkeys.key_id_of(bytes(sealed["email"])) == gone.object_key_id
    assert not _anything_opens(tenant.pk, gone.pk, sealed, key_row)


def test_deleting_destroys_the_key_at_once_in_the_live_database(tenant_a):
    people = _patients(tenant_a, "alpha", "beta")
    with tenant_context(tenant_a):
        email = bytes(Contact.objects.filter(pk=people["alpha"].pk).values_list("email", flat=True).get())
    contact_delete(tenant=tenant_a, actor=ACTOR, contact=people["alpha"], reason="patient request")
    aad = row_aad(tenant_a.pk, TABLE, "email", people["alpha"].pk)
    with pytest.raises(DecryptionError):
        rowkeys.open_field(tenant_a.pk, email, aad)  # the old ciphertext, with the live keys


def test_a_contact_under_legal_hold_keeps_its_key_when_deleted(tenant_a):
    people = _patients(tenant_a, "held")
    held = people["held"]
    holds.hold_create(
        tenant=tenant_a,
        actor=officer(tenant_a),
        matter="Doe v. Clinic",
        reason="Litigation",
        counsel="Outside counsel",
        scope=holds.HoldScope(contact_ids=(held.pk,)),
    )
    contact_delete(tenant=tenant_a, actor=ACTOR, contact=held, reason="patient request")
    with tenant_context(tenant_a), access.granted(GRANT):
        kept = Contact.objects.get(pk=held.pk)
        assert kept.deleted_at is not None
        assert ObjectKey.objects.filter(pk=held.object_key_id).exists()
        assert kept.email == "held@patients.test"


def test_rotation_moves_contacts_sealed_by_the_data_key_under_their_own_keys(tenant_a):
    people = _patients(tenant_a, "legacy")
    contact = people["legacy"]
    aad = row_aad(tenant_a.pk, TABLE, "email", contact.pk)
    with tenant_context(tenant_a):  # as written before per-contact keys: data key, no key of its own
        Contact.objects.filter(pk=contact.pk).update(object_key_id=None)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET email = %s WHERE id = %s",  # noqa: S608
                [envelope.encrypt(tenant_a.pk, b"legacy@patients.test", aad), contact.pk],
            )
    assert rotation.remaining(tenant_a.pk, 1)[TABLE] == 1
    rotation.rotate_data_key(tenant_a.pk, settle_seconds=0)
    assert rotation.remaining(tenant_a.pk, 1)[TABLE] == 0
    with tenant_context(tenant_a), access.granted(GRANT):
        moved = Contact.objects.get(pk=contact.pk)
        blob = bytes(Contact.objects.filter(pk=contact.pk).values_list("email", flat=True).get())
        assert moved.object_key_id is not None
        assert rowkeys.key_id_of(blob) == moved.object_key_id
        assert moved.email == "legacy@patients.test"
        assert moved.first_name == "Legacy"
