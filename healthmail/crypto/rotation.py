"""Online key rotation.

Data-key rotation adds a version, then re-encrypts every encrypted column of the tenant in small
batches (rows locked with SKIP LOCKED, so writers never wait long and two runs share the work). The
work left is simply "rows whose ciphertext names an older version", read from the ciphertext header
in SQL, so an interrupted run resumes where it stopped. Reads accept every version meanwhile.
Writers may hold a stale "current version" for up to keys.CURRENT_TTL seconds, so the run sleeps that
long before its final pass.

A table with per-row keys (rowkeys.py: contacts) is not re-encrypted under the data key: its rows
still sealed by the data key (format 1, written before per-row keys) are moved under their own row
key, in the same batches; rows already under their row key are left alone (epoch rotation re-wraps
their keys).

Master-key (KEK) rotation re-wraps the tenant keys only; no PHI is touched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import connection, models, transaction
from django.db.models import Q
from psycopg import sql

from healthmail.tenants.context import tenant_context

from . import envelope, keys, rowkeys
from .errors import DecryptionError
from .fields import EncryptedFieldMixin
from .integrity import Damage, columns_damage, damage_report, undecryptable
from .key_versions import signing_keys_reseal
from .master import key_ring
from .models import TenantKey

BATCH = 500
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EncryptedColumns:
    table: str
    pk: str
    columns: tuple[str, ...]
    row_key: str | None = None  # the column naming each row's own key (rowkeys.py), if any


def _column(field: models.Field[Any, Any] | models.ForeignObjectRel) -> str:
    # A concrete field is given its column when it joins its model; a reverse relation has none.
    if not isinstance(field, models.Field) or field.column is None:
        raise TypeError(f"{field!r} has no column of its own.")
    return field.column


def encrypted_tables() -> list[EncryptedColumns]:
    found = []
    for model in apps.get_models():
        columns = tuple(
            f.sealed_column for f in model._meta.concrete_fields if isinstance(f, EncryptedFieldMixin)
        )
        if columns:
            row_key = rowkeys.row_key_field(model)
            row_key_column = _column(model._meta.get_field(row_key)) if row_key else None
            found.append(
                EncryptedColumns(model._meta.db_table, _column(model._meta.pk), columns, row_key_column)
            )
    return found


def _format_one(column: str) -> sql.Composable:
    # Byte 1 is the format: 1 sealed by the tenant data key (envelope.py), 2 by a row key.
    return sql.SQL("({col} IS NOT NULL AND get_byte({col}, 0) = 1)").format(col=sql.Identifier(column))


def _older_than(column: str, version: int) -> sql.Composable:
    # Bytes 2-5 of a format-1 ciphertext hold the key version (envelope.py).
    return sql.SQL(
        "({f1} AND ('x' || encode(substring({col} from 2 for 4), 'hex'))::bit(32)::int < {v})"
    ).format(f1=_format_one(column), col=sql.Identifier(column), v=sql.Literal(version))


def _stale_condition(target: EncryptedColumns, version: int) -> sql.Composable:
    if target.row_key:  # every data-key ciphertext is work left: it moves under the row's key
        return sql.SQL(" OR ").join(_format_one(column) for column in target.columns)
    return sql.SQL(" OR ").join(_older_than(column, version) for column in target.columns)


def remaining(tenant_id: uuid.UUID, version: int) -> dict[str, int]:
    counts = {}
    with tenant_context(tenant_id), connection.cursor() as cursor:
        for target in encrypted_tables():
            query = sql.SQL("SELECT count(*) FROM {t} WHERE {cond}").format(
                t=sql.Identifier(target.table), cond=_stale_condition(target, version)
            )
            cursor.execute(query.as_string(cursor.connection))
            counts[target.table] = cursor.fetchone()[0]
    return counts


def _reencrypt_batch(
    tenant_id: uuid.UUID, target: EncryptedColumns, version: int, damaged: dict[str, Damage]
) -> int:
    """Re-encrypt one batch; a row that does not decrypt is left as it is, added to `damaged` and
    kept out of the following batches. Returns the rows looked at (0: nothing left)."""
    selected = [*target.columns, *([target.row_key] if target.row_key else [])]
    select = sql.SQL(
        "SELECT {pk}, {cols} FROM {t} WHERE ({cond}) AND NOT ({pk}::text = ANY(%s)) "
        "ORDER BY {pk} LIMIT {n} FOR UPDATE SKIP LOCKED"
    ).format(
        pk=sql.Identifier(target.pk),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in selected),
        t=sql.Identifier(target.table),
        cond=_stale_condition(target, version),
        n=sql.Literal(BATCH),
    )
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in selected)
    update = sql.SQL("UPDATE {t} SET {a} WHERE {pk} = %s").format(
        t=sql.Identifier(target.table), a=assignments, pk=sql.Identifier(target.pk)
    )
    with tenant_context(tenant_id), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(select.as_string(cursor.connection), [list(damaged)])
        rows = cursor.fetchall()
        row_keys = _row_keys(tenant_id, target, rows)
        updates = []
        for pk, *values in rows:
            stored = values[: len(target.columns)]
            try:
                resealed = _resealed(tenant_id, target, pk, stored, row_keys.get(pk))
            except DecryptionError:
                found = columns_damage(
                    tenant_id, target.table, pk, dict(zip(target.columns, stored, strict=True))
                )
                damaged[str(pk)] = found or undecryptable(tenant_id, target.table, pk, "?")
                continue
            key_column = [row_keys[pk][0]] if target.row_key else []
            updates.append((*resealed, *key_column, pk))
        if updates:
            cursor.executemany(update.as_string(cursor.connection), updates)
    return len(rows)


def _row_keys(
    tenant_id: uuid.UUID, target: EncryptedColumns, rows: list[tuple[Any, ...]]
) -> dict[uuid.UUID, rowkeys.RowKey]:
    """Each row's own key (its stored one, or a new one for a row that never had one): pk → key."""
    if not target.row_key:
        return {}
    stored = {row[0]: row[-1] for row in rows}
    ciphers = rowkeys.row_ciphers(tenant_id, stored.values())
    lacking = [pk for pk, key_id in stored.items() if key_id not in ciphers]
    found = {pk: (key_id, ciphers[key_id]) for pk, key_id in stored.items() if key_id in ciphers}
    found.update(zip(lacking, rowkeys.row_keys_create(tenant_id, len(lacking)), strict=True))
    return found


def _resealed(
    tenant_id: uuid.UUID,
    target: EncryptedColumns,
    pk: uuid.UUID,
    values: list[bytes | memoryview | None],
    row_key: rowkeys.RowKey | None,
) -> list[bytes | None]:
    sealed: list[bytes | None] = []
    for column, value in zip(target.columns, values, strict=True):
        if value is None:
            sealed.append(None)
            continue
        aad = f"{tenant_id}|{target.table}|{column}|{pk}".encode()
        plaintext = rowkeys.open_field(tenant_id, bytes(value), aad)
        if row_key is not None:
            sealed.append(rowkeys.seal(row_key, plaintext, aad))
        else:
            sealed.append(envelope.encrypt(tenant_id, plaintext, aad))
    return sealed


def rotate_data_key(
    tenant_id: uuid.UUID,
    *,
    progress: Progress | None = None,
    settle_seconds: float | None = None,
    resume: bool = True,
    on_damaged: Callable[[Damage], None] | None = None,
) -> int:
    """Rotate one tenant's data key and re-encrypt its rows. Returns the new version.

    With `resume`, an unfinished earlier rotation (rows on older versions) is completed instead of
    starting another version. A row that does not decrypt is skipped (it stays on its old version),
    reported with a critical alert and passed to `on_damaged`; every other row is re-encrypted."""
    newest = keys.key_row(tenant_id, envelope.DATA, None)
    if resume and newest is not None and any(remaining(tenant_id, newest.version).values()):
        version = newest.version
    else:
        version = keys.create_version(tenant_id, envelope.DATA)
    keys.forget_current(tenant_id)
    settle = keys.CURRENT_TTL if settle_seconds is None else settle_seconds
    damaged: dict[str, Damage] = {}
    for final_pass in (False, True):
        if final_pass:
            time.sleep(settle)
        for target in encrypted_tables():
            total = remaining(tenant_id, version)[target.table]
            done = 0
            while True:
                count = _reencrypt_batch(tenant_id, target, version, damaged)
                if count == 0:
                    break
                done += count
                if progress:
                    progress(target.table, done, total)
    resealed = signing_keys_reseal(tenant_id, version)
    if progress and resealed:
        progress("signing keys", resealed, resealed)
    for damage in damaged.values():
        damage_report(damage, found_by="rotate_keys")
        if on_damaged:
            on_damaged(damage)
    return version


def rotate_master_key(
    tenant_ids: Iterator[uuid.UUID],
    *,
    progress: Progress | None = None,
    on_damaged: Callable[[Damage], None] | None = None,
) -> int:
    """Re-wrap every tenant key with the current master key and the tenant's own key (keys made
    before tenant keys existed move under it here). Returns the number re-wrapped; a key
    that does not unwrap is skipped, reported and passed to `on_damaged`."""
    ring = key_ring()
    count = 0
    for tenant_id in tenant_ids:
        with tenant_context(tenant_id):
            root = keys.root_key_current(tenant_id)
            current = Q(master_key_id=ring.current_id, root_key_id=root.pk)
            stale = list(TenantKey.objects.filter(tenant_id=tenant_id).exclude(current))
            for row in stale:
                try:
                    plaintext = keys.unwrap(row)
                except DecryptionError as error:
                    damage = Damage(tenant_id, TenantKey._meta.db_table, str(row.pk), str(error))
                    damage_report(damage, found_by="rotate_keys --master")
                    if on_damaged:
                        on_damaged(damage)
                    continue
                row.master_key_id, row.root_key_id, row.wrapped_key = keys.wrap_key(
                    plaintext, tenant_id=row.tenant_id, purpose=row.purpose, version=row.version
                )
                row.save(update_fields=["master_key_id", "root_key", "wrapped_key"])
                count += 1
        if progress:
            progress("tenant keys", count, count)
    return count
