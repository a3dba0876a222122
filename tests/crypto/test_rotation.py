"""Key rotation while the system runs (C3): nothing lost, every row readable, all on the new key."""

import threading
import uuid

import pytest
from django.core.management import call_command
from django.db import connection

from healthmail.crypto import envelope, keys, master
from healthmail.crypto.models import TenantKey
from healthmail.crypto.rotation import remaining, rotate_data_key
from healthmail.tenants.context import tenant_context
from tests.factories import TenantFactory
from tests.testapp.models import SecretNote


def _versions(tenant) -> set[int]:
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("SELECT body FROM testapp_secretnote")
        return {envelope.key_version_of(bytes(row[0])) for row in cursor.fetchall()}


def test_rotation_under_concurrent_writes_loses_nothing(committed_db):
    tenant = TenantFactory(slug=f"rot-{uuid.uuid4().hex[:8]}")
    expected = {}
    with tenant_context(tenant):
        for index in range(1200):
            note = SecretNote.objects.create(tenant=tenant, body=f"synthetic-{index}")
            expected[note.pk] = note.body
    old_version = keys.current_version(tenant.pk, envelope.DATA)

    stop = threading.Event()
    written = {}

    def writer():
        try:
            while not stop.is_set():
                with tenant_context(tenant):
                    note = SecretNote.objects.create(tenant=tenant, body=f"late-{uuid.uuid4()}")
                written[note.pk] = note.body
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        new_version = rotate_data_key(tenant.pk, settle_seconds=0.2)
    finally:
        stop.set()
        thread.join()
    assert new_version == old_version + 1
    assert written, "the writer thread ran during the rotation"
    assert _versions(tenant) == {new_version}
    assert not any(remaining(tenant.pk, new_version).values())
    with tenant_context(tenant):
        stored = {note.pk: note.body for note in SecretNote.objects.all()}
    assert stored == {**expected, **written}


def test_interrupted_rotation_resumes(committed_db, monkeypatch):
    tenant = TenantFactory(slug=f"rot-{uuid.uuid4().hex[:8]}")
    with tenant_context(tenant):
        for index in range(30):
            SecretNote.objects.create(tenant=tenant, body=f"n{index}")
    from healthmail.crypto import rotation

    monkeypatch.setattr(rotation, "BATCH", 10)
    calls = {"n": 0}
    original = rotation._reencrypt_batch

    def crash_after_one(tenant_id, target, version, damaged):
        if target.table == "testapp_secretnote":
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
        return original(tenant_id, target, version, damaged)

    monkeypatch.setattr(rotation, "_reencrypt_batch", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        rotate_data_key(tenant.pk, settle_seconds=0)
    partial = _versions(tenant)
    assert len(partial) == 2  # some rows moved, some not
    monkeypatch.setattr(rotation, "_reencrypt_batch", original)
    version = rotate_data_key(tenant.pk, settle_seconds=0)
    assert _versions(tenant) == {version} == {max(partial)}


def test_master_key_rotation_rewraps_tenant_keys_only(committed_db, settings):
    tenant = TenantFactory(slug=f"rot-{uuid.uuid4().hex[:8]}")
    with tenant_context(tenant):
        note = SecretNote.objects.create(tenant=tenant, body="kek test")
    before = _versions(tenant)
    settings.HEALTHMAIL_MASTER_KEY = (
        "new:" + "TkVXLW1hc3Rlci1rZXktZm9yLXRlc3RzLTMyYnl0ZSE=," + settings.HEALTHMAIL_MASTER_KEY
    )
    master.key_ring.cache_clear()
    keys.forget_all()
    try:
        call_command("rotate_keys", "--master", "--tenant", tenant.slug, verbosity=0)
        with tenant_context(tenant):
            assert set(TenantKey.objects.values_list("master_key_id", flat=True)) == {"new"}
        # Only the new master key is needed from now on.
        settings.HEALTHMAIL_MASTER_KEY = settings.HEALTHMAIL_MASTER_KEY.split(",")[0]
        master.key_ring.cache_clear()
        keys.forget_all()
        with tenant_context(tenant):
            assert SecretNote.objects.get(pk=note.pk).body == "kek test"
        assert _versions(tenant) == before
    finally:
        master.key_ring.cache_clear()
        keys.forget_all()
