"""Signatures outlive key rotation (issue 25): checkpoints are checked with the public keys kept in
the append-only key history, so removing the old master key after a rotation never turns a
truncated chain from BROKEN into ok, and a checkpoint nobody can verify fails verification loudly."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from audit import chain, key_history
from audit import services as audit
from healthmail.actors import Actor
from healthmail.crypto import keys, master
from tests.factories import TenantFactory

NEW_KEY = "new:TkVXLW1hc3Rlci1rZXktZm9yLXRlc3RzLTMyYnl0ZSE="


@pytest.fixture(autouse=True)
def checkpoint_dir(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")


@pytest.fixture
def master_keys(settings):
    """`master_keys(text)` sets the ring (and drops every cached key). Afterwards the tenants rotated
    to the new key go back to the usual one: later tests sign checkpoints for every tenant."""
    original = settings.HEALTHMAIL_MASTER_KEY
    rotated: list = []

    def use(text: str) -> None:
        settings.HEALTHMAIL_MASTER_KEY = text
        master.key_ring.cache_clear()
        keys.forget_all()

    use.rotated = rotated
    yield use
    use(f"{original},{NEW_KEY}")
    for tenant in rotated:
        call_command("rotate_keys", "--master", "--tenant", tenant.slug, verbosity=0)
    use(original)


def _tenant_with_events(count: int):
    tenant = TenantFactory(slug=f"ckpt-{uuid.uuid4().hex[:8]}")
    for index in range(count):
        audit.record(actor=Actor.system("test"), action="test.event", tenant=tenant, details={"n": index})
    while chain.seal_pending(tenant.pk):
        pass
    return tenant


def _delete_newest(tenant, count: int) -> None:
    """As the database owner with triggers off: the newest rows and the head go back."""
    owner = connections["owner"]
    with owner.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "DELETE FROM audit_auditevent WHERE tenant_id = %s AND seq > "
            "(SELECT max(seq) - %s FROM audit_auditevent WHERE tenant_id = %s)",
            [tenant.pk, count, tenant.pk],
        )
        cursor.execute("SET session_replication_role = origin")
    owner.close()


def _rotate_master_and_drop_the_old_key(settings, master_keys, tenant) -> None:
    old = settings.HEALTHMAIL_MASTER_KEY
    master_keys(f"{NEW_KEY},{old}")
    call_command("rotate_keys", "--master", "--tenant", tenant.slug, verbosity=0)
    master_keys.rotated.append(tenant)
    master_keys(NEW_KEY)


def _verify(tenant) -> tuple[bool, str]:
    report = chain.verify_chain(tenant.pk)
    return report.ok, "\n".join(report.problems)


def test_truncation_stays_broken_after_the_old_master_key_is_removed(
    committed_db, settings, master_keys, monkeypatch
):
    """The issue's run: checkpoints signed under the old master key, the key rotated away, the newest
    rows deleted. The tenant's checkpoints here are signed the way they were before tenants had
    keys (with the master-derived key), and the platform chain's always are."""
    tenant = _tenant_with_events(12)
    monkeypatch.setattr(chain, "sign", lambda message, tenant_id=None: _master_signed(message))
    chain.checkpoint_export()
    monkeypatch.undo()
    assert json.loads(chain.checkpoint_path(tenant.pk).read_text().splitlines()[0])["key_id"] == "test"

    _rotate_master_and_drop_the_old_key(settings, master_keys, tenant)
    _delete_newest(tenant, 5)
    ok, problems = _verify(tenant)
    assert not ok
    assert "rows missing at the end of the chain" in problems
    with pytest.raises(CommandError, match="failed verification"):
        call_command("audit_verify", "--tenant", tenant.slug)


def _master_signed(message: bytes) -> tuple[str, str]:
    key_id, private_key = chain._signing_key()
    return private_key.sign(message).hex(), key_id


def test_tenant_key_checkpoints_survive_the_rotation_too(committed_db, settings, master_keys):
    tenant = _tenant_with_events(8)
    chain.checkpoint_export()
    _rotate_master_and_drop_the_old_key(settings, master_keys, tenant)
    assert _verify(tenant) == (True, "")
    _delete_newest(tenant, 3)
    ok, problems = _verify(tenant)
    assert not ok
    assert "rows missing" in problems


def test_a_checkpoint_no_key_can_verify_fails_verification_loudly(
    committed_db, settings, master_keys, monkeypatch
):
    """Without its published key (history lost) and with the secret gone, a checkpoint is reported,
    never skipped: the chain cannot pass as ok."""
    tenant = _tenant_with_events(6)
    monkeypatch.setattr(chain, "sign", lambda message, tenant_id=None: _master_signed(message))
    chain.checkpoint_export()
    monkeypatch.undo()
    key_history.history_path().unlink()
    _rotate_master_and_drop_the_old_key(settings, master_keys, tenant)
    ok, problems = _verify(tenant)
    assert not ok
    assert "cannot be verified: key test is neither published nor available" in problems


def test_a_published_key_cannot_be_replaced_by_a_later_line(committed_db):
    tenant = _tenant_with_events(4)
    chain.checkpoint_export()
    (entry,) = [json.loads(line) for line in chain.checkpoint_path(tenant.pk).read_text().splitlines()]
    published = key_history.history_read()[entry["key_id"]]["public_key"]
    key_history.key_publish(key_id=entry["key_id"], scope=str(tenant.pk), public_key="00" * 32)
    with key_history.history_path().open("a") as handle:  # even written straight into the file
        handle.write(
            json.dumps({"key_id": entry["key_id"], "scope": str(tenant.pk), "public_key": "11" * 32}) + "\n"
        )
    assert key_history.history_read()[entry["key_id"]]["public_key"] == published
    assert _verify(tenant) == (True, "")


def test_a_forged_checkpoint_line_is_reported(committed_db):
    tenant = _tenant_with_events(4)
    chain.checkpoint_export()
    path = chain.checkpoint_path(tenant.pk)
    forged = {
        "chain": str(tenant.pk),
        "seq": 2,
        "hash": "00",
        "at": "now",
        "key_id": "test",
        "signature": "00",
    }
    path.write_text(path.read_text() + json.dumps(forged) + "\n")
    ok, problems = _verify(tenant)
    assert not ok
    assert "checkpoint line 2" in problems
    assert "signature does not verify" in problems


def test_a_certificate_signed_with_a_master_key_removed_after_rotation_still_verifies(settings, master_keys):
    """Certificates, packages and exports are checked with `chain.signature_ok`: a signature made
    with a master-derived key verifies through the published key history once that master key is
    gone from the ring; an edited document still fails, and so does a key the history contradicts."""
    chain.master_keys_publish()
    old = settings.HEALTHMAIL_MASTER_KEY
    document = b'{"certificate":"synthetic","records":3}'
    signature, key_id = chain.sign(document)
    assert chain.signature_ok(document, signature, key_id)

    master_keys(NEW_KEY)  # the old master key removed
    assert chain.signature_ok(document, signature, key_id)
    assert not chain.signature_ok(document.replace(b"3", b"4"), signature, key_id)

    # The history's first line wins; a forged later line changes nothing.
    key_history.key_publish(key_id=key_id, scope=key_history.PLATFORM, public_key="00" * 32)
    assert chain.signature_ok(document, signature, key_id)
    master_keys(old)
