"""Verifiable by outsiders: each organization signs with its own Ed25519 key and publishes the public
key (page, API, every package). An audit export, a certificate package and a chain checkpoint verify
with that public key alone — with our command, with OpenSSL, with a 20-line script — fail after one
changed byte, and rotating the key keeps old signatures checkable."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import zipfile

import pytest
from django.urls import reverse

from audit import chain, exports
from audit.selectors import EventFilter
from healthmail.actors import Actor
from healthmail.crypto import signing
from healthmail.tenants.context import tenant_context
from tests.audit.test_pages import _events

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


@pytest.fixture(autouse=True)
def checkpoint_dir(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")


def _export(tenant) -> bytes:
    _events(tenant, 3)
    return exports.audit_export(actor=ACTOR, tenant=tenant, filters=EventFilter(), fmt="json").content


def _flip_one_byte(content: bytes, name: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == name:
                data = data[:-3] + bytes([data[-3] ^ 1]) + data[-2:]
            target.writestr(item, data)
    return out.getvalue()


def test_an_audit_export_verifies_with_the_published_public_key_alone(tenant_a, tenant_b):
    content = _export(tenant_a)
    published = signing.signing_key_current(tenant_a).public_key
    assert exports.verify_export(content, public_key=published) == []
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(content)).read("manifest.json"))
    assert manifest["public_key"] == published
    assert manifest["key_id"] == signing.signing_key_current(tenant_a).key_id
    assert exports.verify_export(_flip_one_byte(content, "manifest.json"), public_key=published)
    other_tenant = signing.signing_key_current(tenant_b).public_key  # another organization's key
    assert exports.verify_export(content, public_key=other_tenant)


def test_openssl_and_a_short_script_verify_what_the_docs_say(tenant_a, tmp_path):
    """The documented outsider procedure, run as written (docs/phi-protection.md)."""
    content = _export(tenant_a)
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(content)).read("manifest.json"))
    signature = bytes.fromhex(manifest.pop("signature"))
    manifest.pop("key_id"), manifest.pop("public_key")
    (tmp_path / "signed.bin").write_bytes(json.dumps(manifest, sort_keys=True).encode())
    (tmp_path / "signature.bin").write_bytes(signature)
    (tmp_path / "key.pem").write_text(signing.public_key_pem(signing.signing_key_current(tenant_a)))
    if shutil.which("openssl"):
        command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "key.pem", "-rawin"]
        command += ["-in", "signed.bin", "-sigfile", "signature.bin"]
        good = subprocess.run(command, cwd=tmp_path, capture_output=True, check=False)
        assert good.returncode == 0, good.stderr
        (tmp_path / "signed.bin").write_bytes((tmp_path / "signed.bin").read_bytes().replace(b'"', b"'", 1))
        bad = subprocess.run(command, cwd=tmp_path, capture_output=True, check=False)
        assert bad.returncode != 0
    # Without OpenSSL: the key's PEM base64 ends with the raw 32 bytes the API also lists.
    raw = base64.b64decode("".join((tmp_path / "key.pem").read_text().splitlines()[1:-1]))[-32:]
    assert raw.hex() == signing.signing_key_current(tenant_a).public_key


def test_rotation_keeps_old_signatures_checkable(tenant_a):
    before = _export(tenant_a)
    old = signing.signing_key_current(tenant_a)
    new = signing.signing_key_rotate(tenant_a)
    after = _export(tenant_a)
    assert new.key_id != old.key_id
    assert exports.verify_export(before) == []  # on the platform, by the key id it names
    assert exports.verify_export(before, public_key=old.public_key) == []
    assert exports.verify_export(after, public_key=new.public_key) == []
    assert exports.verify_export(after, public_key=old.public_key)  # the retired key signs nothing new
    assert [k.key_id for k in signing.signing_keys(tenant_a)] == [new.key_id, old.key_id]


@pytest.mark.django_db(databases=["default", "owner"])
def test_a_database_row_cannot_vouch_for_a_forged_signature(tenant_a, owner_connection):
    """The platform checks against the key recomputed from the sealed private key: replacing the public
    key column (as the database owner could) does not make a forger's signature pass."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = signing.signing_key_current(tenant_a)
    forger = Ed25519PrivateKey.generate()
    message = b"forged checkpoint"
    with owner_connection.cursor() as cursor:
        cursor.execute(
            "UPDATE crypto_signingkey SET public_key = %s WHERE id = %s",
            [forger.public_key().public_bytes_raw().hex(), key.pk],
        )
    assert not signing.signature_ok(tenant_a, message, forger.sign(message).hex(), key.key_id)


def test_chain_checkpoints_are_signed_with_the_tenant_key(tenant_a):
    _events(tenant_a, 2)
    chain.seal_pending(tenant_a.pk)
    chain.checkpoint_export()
    entry = chain.latest_checkpoint(tenant_a.pk)
    assert entry is not None
    assert entry["key_id"] == signing.signing_key_current(tenant_a).key_id
    message = f"{entry['chain']}|{entry['seq']}|{entry['hash']}|{entry['at']}".encode()
    assert signing.public_key_verifies(
        signing.signing_key_current(tenant_a).public_key, message, entry["signature"]
    )
    assert not chain.checkpoint_signature_ok({**entry, "seq": entry["seq"] + 1})


def test_the_keys_are_published_on_a_page_and_in_the_api(member_client, tenant_a, tenant_b, issue_key, api):
    officer = member_client("compliance_officer")
    page = officer.get(reverse("audit:signing_keys"))
    assert page.status_code == 200
    current = signing.signing_key_current(tenant_a)
    assert current.key_id in page.content.decode()
    pem = officer.get(reverse("audit:signing_key_pem", args=[current.fingerprint]))
    assert pem.content.decode() == signing.public_key_pem(current)
    foreign = signing.signing_key_current(tenant_b)
    assert officer.get(reverse("audit:signing_key_pem", args=[foreign.fingerprint])).status_code == 404
    assert officer.post(reverse("audit:signing_keys")).status_code == 302  # rotate
    listed = api(issue_key(scopes=["contacts:read"])).get("/api/v1/signing-keys").json()
    assert [row["key_id"] for row in listed][1] == current.key_id
    assert listed[0]["retired_at"] is None
    assert listed[1]["retired_at"] is not None
    assert foreign.key_id not in json.dumps(listed)
    with tenant_context(tenant_a):
        from audit.models import AuditEvent

        assert AuditEvent.objects.filter(action="crypto.signing_key_rotate").count() == 1


@pytest.mark.parametrize("role", ["marketer", "clinical_reviewer"])
def test_other_roles_do_not_manage_keys(member_client, role):
    assert member_client(role).get(reverse("audit:signing_keys")).status_code == 403
