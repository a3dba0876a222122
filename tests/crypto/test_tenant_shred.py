"""Shredding a whole tenant (issue 25, point 1): a `pg_dump` taken before `shred_tenant`, restored
into a fresh database afterwards, opens nothing of the shredded tenant with the keys that remain
(master key ring, key store) — neither its data and index keys nor its object keys — while the
other tenant's keys and contacts still open from the same dump. The certificate is signed, states
the counts the database returned, and verifies with the published key history. A legal hold, or a
missing confirmation, refuses the shred and destroys nothing."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from contacts.models import Contact
from contacts.normalize import ContactInput
from contacts.services import contact_upsert_many
from healthmail.actors import Actor
from healthmail.crypto import epochs, keys, objects, rowkeys, signing
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.fields import row_aad
from healthmail.crypto.models import TenantKey, TenantRootKey
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from retention import holds
from retention.tenant_shred import certificate_verifies
from tests.crypto.test_shred_backups import _drop, _dump, _restore
from tests.factories import BaaFactory, TenantFactory
from tests.retention.helpers import officer

ACTOR = Actor.system("tests")


@pytest.fixture(autouse=True)
def key_store_dir(settings, tmp_path):
    settings.HEALTHMAIL_KEYSTORE_DIR = str(tmp_path / "keystore")
    keys.forget_all()
    yield
    keys.forget_all()


def _tenant_with_data(label: str) -> Tenant:
    tenant = TenantFactory(slug=f"{label}-{uuid.uuid4().hex[:8]}")
    BaaFactory(tenant=tenant)
    inputs = [ContactInput(email=f"{label}{n}@patients.test", first_name=f"Synthetic{n}") for n in range(3)]
    contact_upsert_many(tenant=tenant, actor=ACTOR, inputs=inputs, source="test")
    objects.content_seal(objects.object_key_create(tenant=tenant), b"synthetic message body")
    signing.signing_key_current(tenant)  # sealed by the data key (contacts need none of their own)
    return tenant


def _connect(database: str):
    owner = settings.DATABASES["owner"]
    return psycopg.connect(
        host=owner["HOST"],
        port=owner["PORT"],
        user=owner["USER"],
        password=owner["PASSWORD"] or None,
        dbname=database,
    )


def _restored(database: str, tenant_id) -> tuple[list[TenantKey], list[tuple], list[tuple]]:
    with _connect(database) as restored:
        tenant_keys = [
            TenantKey(
                tenant_id=tenant_id,
                purpose=purpose,
                version=version,
                master_key_id=master_key_id,
                root_key_id=root_key_id,
                wrapped_key=bytes(wrapped),
            )
            for purpose, version, master_key_id, root_key_id, wrapped in restored.execute(
                "SELECT purpose, version, master_key_id, root_key_id, wrapped_key FROM crypto_tenantkey "
                "WHERE tenant_id = %s",
                [tenant_id],
            )
        ]
        object_keys = restored.execute(
            "SELECT id, epoch_id, wrapped_key FROM crypto_objectkey WHERE tenant_id = %s", [tenant_id]
        ).fetchall()
        contacts = restored.execute(
            "SELECT id, email FROM contacts_contact WHERE tenant_id = %s", [tenant_id]
        ).fetchall()
    return tenant_keys, object_keys, contacts


def _opens_tenant_key(row: TenantKey) -> bool:
    try:
        keys.unwrap(row)
    except DecryptionError:
        return False
    return True


def _object_key(tenant_id, row) -> bytes | None:
    try:
        return epochs.object_key_unwrap(
            tenant_id=tenant_id, object_key_id=row[0], epoch_id=row[1], wrapped=bytes(row[2])
        )
    except DecryptionError:
        return None


def test_a_shredded_tenant_opens_nothing_from_a_dump_taken_before_and_the_other_still_does(
    committed_db, tmp_path
):
    shredded, other = _tenant_with_data("shredme"), _tenant_with_data("keepme")
    dump = tmp_path / "before-tenant-shred.dump"
    _dump(dump)

    certificate_file = tmp_path / "certificate.json"
    call_command(
        "shred_tenant",
        tenant=shredded.slug,
        reason="contract ended",
        confirmed=True,
        certificate=str(certificate_file),
    )
    certificate = json.loads(certificate_file.read_text())
    assert certificate_verifies(certificate)
    counts = certificate["document"]["counts"]
    assert counts["tenant_keys_destroyed"] == 1
    assert counts["epoch_keys_destroyed"] == 1
    assert counts["data_and_index_keys_deleted"] == 2  # data key v1 and index key v1
    assert counts["object_keys_unreadable"] == 4  # three contacts' keys and one message body's
    assert counts["encrypted_rows"]["contacts_contact"] == 3
    assert counts["tenant_suspended"] == 1
    forged = {
        **certificate,
        "document": {**certificate["document"], "counts": {**counts, "epoch_keys_destroyed": 0}},
    }
    assert not certificate_verifies(forged)
    with tenant_context(shredded):
        assert TenantRootKey.objects.get(tenant=shredded).destroyed_at is not None
        assert not TenantKey.objects.filter(tenant=shredded).exists()

    database = _restore(dump)
    try:
        gone = _restored(database, shredded.pk)
        kept = _restored(database, other.pk)
    finally:
        _drop(database)
    keys.forget_all()

    tenant_keys, object_keys, contacts = gone
    assert len(tenant_keys) == 2
    assert len(object_keys) == 4
    assert len(contacts) == 3  # the dump does hold all of it
    assert not any(_opens_tenant_key(row) for row in tenant_keys)
    assert not any(_object_key(shredded.pk, row) for row in object_keys)

    tenant_keys, object_keys, contacts = kept
    assert all(_opens_tenant_key(row) for row in tenant_keys)
    opened = {row[0]: _object_key(other.pk, row) for row in object_keys}
    assert all(opened.values())
    for contact_id, email in contacts:  # decrypted from the dump with the restored contact key
        blob = bytes(email)
        key_id = rowkeys.key_id_of(blob)
        cipher = rowkeys.AESGCM(opened[key_id])
        aad = row_aad(other.pk, Contact._meta.db_table, "email", contact_id)
        assert cipher.decrypt(blob[17:29], blob[29:], aad).endswith(b"@patients.test")


def test_a_legal_hold_refuses_the_shred_and_nothing_is_destroyed(tenant_a):
    contact_upsert_many(
        tenant=tenant_a, actor=ACTOR, inputs=[ContactInput(email="h@patients.test")], source="t"
    )
    holds.hold_create(
        tenant=tenant_a,
        actor=officer(tenant_a),
        matter="Doe v. Clinic",
        reason="Litigation",
        counsel="Outside counsel",
        scope=holds.HoldScope(categories=("contacts",)),
    )
    with pytest.raises(CommandError, match="legal hold"):
        call_command("shred_tenant", tenant=tenant_a.slug, reason="contract ended", confirmed=True)
    with tenant_context(tenant_a):
        assert TenantRootKey.objects.filter(tenant=tenant_a, destroyed_at__isnull=True).count() == 1
        assert TenantKey.objects.filter(tenant=tenant_a).exists()


def test_the_shred_needs_its_confirmation(tenant_a):
    contact_upsert_many(
        tenant=tenant_a, actor=ACTOR, inputs=[ContactInput(email="c@patients.test")], source="t"
    )
    with pytest.raises(CommandError, match="--yes-destroy-everything"):
        call_command("shred_tenant", tenant=tenant_a.slug, reason="contract ended")
    with tenant_context(tenant_a):
        assert TenantKey.objects.filter(tenant=tenant_a).exists()
