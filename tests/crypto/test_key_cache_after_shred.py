"""Another process's key cache after a tenant shred (issue 25, point 1): this test process unwraps a
tenant's data and index keys and keeps them cached, as a worker does; `manage.py shred_tenant` then
runs in a separate process. Once HEALTHMAIL_KEY_CACHE_CHECK_SECONDS have passed, the cached copies
are checked against the key rows still live and dropped: nothing of the tenant decrypts here any
more, while another tenant's cached keys keep working."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from healthmail.crypto import blind, envelope, keys
from healthmail.crypto.errors import DecryptionError
from healthmail.tenants.models import Tenant
from tests.factories import BaaFactory, TenantFactory

CHECK_SECONDS = 1.0


@pytest.fixture(autouse=True)
def key_store_dir(settings, tmp_path):
    settings.HEALTHMAIL_KEYSTORE_DIR = str(tmp_path / "keystore")
    settings.HEALTHMAIL_KEY_CACHE_CHECK_SECONDS = CHECK_SECONDS
    keys.forget_all()
    yield
    keys.forget_all()


def _shred_in_another_process(tenant: Tenant) -> None:
    owner = settings.DATABASES["owner"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{owner['USER']}@{owner['HOST']}:{owner['PORT']}/{owner['NAME']}",
        "DJANGO_SETTINGS_MODULE": "healthmail.settings.test",
        "HEALTHMAIL_KEYSTORE_DIR": settings.HEALTHMAIL_KEYSTORE_DIR,
    }
    command = [sys.executable, "manage.py", "shred_tenant", "--tenant", tenant.slug]
    command += ["--reason", "contract ended", "--yes-destroy-everything"]
    done = subprocess.run(
        command,
        cwd=Path(settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _opens(tenant: Tenant, blob: bytes) -> bool:
    try:
        return envelope.decrypt(tenant.pk, blob, b"aad") == b"synthetic value"
    except DecryptionError:
        return False


def test_a_worker_holding_a_tenants_keys_stops_decrypting_once_another_process_shreds_it(committed_db):
    shredded = TenantFactory(slug=f"cached-{uuid.uuid4().hex[:8]}")
    other = TenantFactory(slug=f"kept-{uuid.uuid4().hex[:8]}")
    for tenant in (shredded, other):
        BaaFactory(tenant=tenant)
    blobs = {t.pk: envelope.encrypt(t.pk, b"synthetic value", b"aad") for t in (shredded, other)}
    index_before = blind.blind_index(shredded, "email", "pat@patients.test")
    assert _opens(shredded, blobs[shredded.pk])
    assert _opens(other, blobs[other.pk])
    assert (shredded.pk, blind.INDEX, 1) in keys._unwrapped  # this process holds the keys unwrapped

    _shred_in_another_process(shredded)
    time.sleep(CHECK_SECONDS + 0.2)

    assert not _opens(shredded, blobs[shredded.pk])
    assert (shredded.pk, envelope.DATA, 1) not in keys._unwrapped
    assert (shredded.pk, blind.INDEX, 1) not in keys._unwrapped
    try:
        index_after = blind.blind_index(shredded, "email", "pat@patients.test")
    except DecryptionError:
        index_after = None
    assert index_after != index_before  # the destroyed index key no longer finds anything
    assert _opens(other, blobs[other.pk])
