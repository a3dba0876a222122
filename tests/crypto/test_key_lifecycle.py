"""The key lifecycle (issue 25, point 5): each data-key version counts what it encrypted (batched),
`rotate_keys --status` reports versions, rows per version, usage against the threshold, the epoch
and damaged rows; after a rotation has moved every value, the older versions are destroyed — and
only when a query finds no value naming them."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from contacts.normalize import ContactInput
from contacts.services import contact_upsert_many
from healthmail.actors import Actor
from healthmail.crypto import envelope, keys, rotation, signing, usage
from healthmail.crypto.key_versions import data_keys_destroy_unused, rows_per_version
from healthmail.crypto.models import TenantKey
from healthmail.tenants.context import tenant_context

ACTOR = Actor.system("tests")


def test_encryptions_are_counted_per_version_in_batches(tenant_a, monkeypatch):
    monkeypatch.setattr(usage, "FLUSH_EVERY", 1000)
    monkeypatch.setattr(usage, "FLUSH_SECONDS", 3600.0)
    usage.flush()
    envelope.encrypt_many(tenant_a.pk, [(b"synthetic", b"aad")] * 2500)
    for _ in range(7):
        envelope.encrypt(tenant_a.pk, b"synthetic", b"aad")
    version = keys.current_version(tenant_a.pk, envelope.DATA)
    assert usage.encryptions(tenant_a.pk) == {version: 2500}  # flushed when the batch passed 1000
    usage.flush()
    assert usage.encryptions(tenant_a.pk) == {version: 2507}


def test_rotation_destroys_older_versions_once_no_value_names_them(tenant_a):
    signing.signing_key_current(tenant_a)  # sealed by data key v1
    message = b"synthetic checkpoint"
    assert rows_per_version(tenant_a.pk)["crypto_signingkey"] == {1: 1}
    assert data_keys_destroy_unused(tenant_a.pk) == []  # nothing older than the current one yet
    version = rotation.rotate_data_key(tenant_a.pk, settle_seconds=0)
    assert version == 2
    assert rows_per_version(tenant_a.pk)["crypto_signingkey"] == {2: 1}  # re-sealed by the rotation
    assert data_keys_destroy_unused(tenant_a.pk) == [1]
    with tenant_context(tenant_a):
        assert list(TenantKey.objects.filter(purpose="data").values_list("version", flat=True)) == [2]
    signature, key_id = signing.sign(tenant_a, message)  # the private key opens under v2
    assert signing.signature_ok(tenant_a, message, signature, key_id)


def test_a_version_some_value_still_names_is_kept(tenant_a):
    signing.signing_key_current(tenant_a)  # v1
    keys.create_version(tenant_a.pk, envelope.DATA)  # v2, but nothing re-sealed
    assert data_keys_destroy_unused(tenant_a.pk) == []
    with tenant_context(tenant_a):
        assert TenantKey.objects.filter(purpose="data", version=1).exists()


def test_status_reports_versions_rows_usage_epoch_and_damage(tenant_a, settings):
    settings.HEALTHMAIL_DATA_KEY_ROTATE_AFTER = 5
    contact_upsert_many(
        tenant=tenant_a, actor=ACTOR, inputs=[ContactInput(email="s@patients.test")], source="test"
    )
    signing.signing_key_current(tenant_a)
    envelope.encrypt_many(tenant_a.pk, [(b"x", b"aad")] * 10)
    usage.flush()
    out = StringIO()
    call_command("rotate_keys", status=True, tenant=tenant_a.slug, stdout=out)
    text = out.getvalue()
    assert f"Tenant {tenant_a.slug}: tenant key live" in text
    assert "data key v1: 1 row(s)" in text
    assert "ROTATION DUE" in text
    assert "index key: v1 active" in text
    assert "1 object key(s) (per-contact keys included)" in text
    assert "damaged rows: 0" in text
