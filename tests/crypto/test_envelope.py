"""Encrypted fields: round trip, binding to tenant/table/column/row, tamper detection (C2)."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from healthmail.crypto import envelope, keys
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.master import MasterKeyRing, parse_key_ring
from healthmail.tenants.context import tenant_context
from tests.testapp.models import SecretNote

pytestmark = pytest.mark.django_db
PHI = "Synthetic Patient Zed, zed@example.org"


def _note(tenant, body=PHI, **extra) -> SecretNote:
    with tenant_context(tenant):
        return SecretNote.objects.create(tenant=tenant, body=body, **extra)


def _raw(note, column="body") -> bytes:
    with tenant_context(note.tenant_id), connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM testapp_secretnote WHERE id = %s", [note.pk])  # noqa: S608
        return bytes(cursor.fetchone()[0])


def _write_raw(note, value: bytes, column="body") -> None:
    with tenant_context(note.tenant_id), connection.cursor() as cursor:
        cursor.execute(f"UPDATE testapp_secretnote SET {column} = %s WHERE id = %s", [value, note.pk])  # noqa: S608


def _read(note):
    with tenant_context(note.tenant_id):
        return SecretNote.objects.get(pk=note.pk)


def test_round_trip_and_nothing_readable_at_rest(tenant_a):
    note = _note(tenant_a, clinical={"conditions": ["E11.9"]})
    stored = _raw(note)
    assert PHI.encode() not in stored
    assert b"E11.9" not in _raw(note, "clinical")
    fresh = _read(note)
    assert fresh.body == PHI
    assert fresh.clinical == {"conditions": ["E11.9"]}


def test_each_encryption_uses_a_fresh_nonce(tenant_a):
    first, second = _note(tenant_a), _note(tenant_a)
    assert _raw(first)[5:17] != _raw(second)[5:17]


def test_ciphertext_copied_to_another_row_fails(tenant_a):
    source, target = _note(tenant_a), _note(tenant_a, body="other")
    _write_raw(target, _raw(source))
    with pytest.raises(DecryptionError):
        _ = _read(target).body


def test_ciphertext_copied_to_another_column_fails(tenant_a):
    note = _note(tenant_a, clinical=["x"])
    _write_raw(note, _raw(note, "body"), column="clinical")
    with pytest.raises(DecryptionError):
        _ = _read(note).clinical


def test_ciphertext_copied_to_another_tenant_fails(tenant_a, tenant_b):
    source, target = _note(tenant_a), _note(tenant_b, body="b")
    _write_raw(target, _raw(source))
    with pytest.raises(DecryptionError):
        _ = _read(target).body


@pytest.mark.parametrize("position", [0, 3, 8, 20, -1])
def test_any_single_byte_change_is_detected(tenant_a, position):
    note = _note(tenant_a)
    blob = bytearray(_raw(note))
    blob[position] ^= 0x01
    _write_raw(note, bytes(blob))
    with pytest.raises(DecryptionError):
        _ = _read(note).body


def test_truncated_ciphertext_is_detected(tenant_a):
    note = _note(tenant_a)
    _write_raw(note, _raw(note)[:20])
    with pytest.raises(DecryptionError, match="truncated"):
        _ = _read(note).body


def test_encrypted_fields_cannot_be_filtered_on(tenant_a):
    with tenant_context(tenant_a), pytest.raises(TypeError, match="blind index"):
        list(SecretNote.objects.filter(body=PHI))


def test_master_key_must_be_present_and_valid():
    with pytest.raises(ImproperlyConfigured):
        MasterKeyRing(parse_key_ring(""))
    with pytest.raises(ImproperlyConfigured, match="32 bytes"):
        parse_key_ring("k1:c2hvcnQ=")
    with pytest.raises(ImproperlyConfigured, match="base64"):
        parse_key_ring("k1:not base64!")


def test_wrong_master_key_refuses_to_unwrap(tenant_a, settings):
    note = _note(tenant_a)
    keys.forget_all()
    from healthmail.crypto import master

    master.key_ring.cache_clear()
    settings.HEALTHMAIL_MASTER_KEY = "test:" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    try:
        with pytest.raises(DecryptionError, match="unwrap"):
            _ = _read(note).body
    finally:
        master.key_ring.cache_clear()
        keys.forget_all()


def test_production_settings_refuse_to_start_without_master_key(monkeypatch):
    import importlib
    import sys

    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 50)
    monkeypatch.setenv("DATABASE_URL", "postgres://u@127.0.0.1:5432/db")
    monkeypatch.delenv("HEALTHMAIL_MASTER_KEY", raising=False)
    monkeypatch.delenv("HEALTHMAIL_MASTER_KEY_FILE", raising=False)
    base = sys.modules.pop("healthmail.settings.base")
    try:
        with pytest.raises(ImproperlyConfigured, match="MASTER_KEY"):
            importlib.import_module("healthmail.settings.production")
    finally:
        sys.modules.pop("healthmail.settings.production", None)
        sys.modules["healthmail.settings.base"] = base


def test_version_header_names_the_current_key(tenant_a):
    note = _note(tenant_a)
    assert envelope.key_version_of(_raw(note)) == keys.current_version(tenant_a.pk, envelope.DATA)
