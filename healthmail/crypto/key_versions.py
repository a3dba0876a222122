"""Which data-key versions are still in use, and destroying the ones that are not.

A version is in use while any ciphertext names it: a format-1 value of an encrypted column, a
signing key's sealed private key, an object key still wrapped by the data key (made before
epochs). `versions_in_use` asks the database; `data_keys_destroy_unused` deletes the key row of
every older version none of them names, checked in the same transaction that deletes it.
"""

from __future__ import annotations

import uuid
from collections import Counter

from django.db import connection, transaction
from psycopg import sql

from healthmail.tenants.context import tenant_context

from . import envelope, keys
from .models import ObjectKey, SigningKey, TenantKey

# The key version in bytes 2-5 of a format-1 ciphertext (envelope.py).
_VERSION = "('x' || encode(substring({col} from 2 for 4), 'hex'))::bit(32)::int"


def _version_of(column: str) -> sql.Composable:
    return sql.SQL(_VERSION).format(col=sql.Identifier(column))


def _sealed_columns() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(table, primary key, columns, extra condition) of everything the data key seals."""
    from .rotation import encrypted_tables  # rotation destroys versions through this module

    found = [(t.table, t.pk, t.columns, "TRUE") for t in encrypted_tables()]
    found.append((SigningKey._meta.db_table, "id", ("wrapped_key",), "TRUE"))
    found.append((ObjectKey._meta.db_table, "id", ("wrapped_key",), "epoch_id IS NULL"))
    return found


def rows_per_version(tenant_id: uuid.UUID) -> dict[str, Counter[int]]:
    """table -> Counter(version -> rows with at least one value sealed by that version)."""
    result: dict[str, Counter[int]] = {}
    with tenant_context(tenant_id), connection.cursor() as cursor:
        for table, pk, columns, condition in _sealed_columns():
            parts = [
                sql.SQL(
                    "SELECT {pk} AS id, {v} AS version FROM {t} WHERE {col} IS NOT NULL "
                    "AND get_byte({col}, 0) = 1 AND {extra}"
                ).format(
                    pk=sql.Identifier(pk),
                    v=_version_of(column),
                    t=sql.Identifier(table),
                    col=sql.Identifier(column),
                    extra=sql.SQL(condition),
                )
                for column in columns
            ]
            query = sql.SQL(
                "SELECT version, count(DISTINCT id) FROM ({u}) AS sealed GROUP BY version"
            ).format(u=sql.SQL(" UNION ALL ").join(parts))
            cursor.execute(query.as_string(cursor.connection))
            counts = Counter(dict(cursor.fetchall()))
            if counts:
                result[table] = counts
    return result


def versions_in_use(tenant_id: uuid.UUID) -> set[int]:
    return {version for counts in rows_per_version(tenant_id).values() for version in counts}


@transaction.atomic
def data_keys_destroy_unused(tenant_id: uuid.UUID) -> list[int]:
    """Delete every data-key version older than the current one that no ciphertext names (the
    check and the deletion in one transaction, the versions locked). Returns the versions deleted."""
    with tenant_context(tenant_id):
        older = list(
            TenantKey.objects.select_for_update()
            .filter(tenant_id=tenant_id, purpose=TenantKey.Purpose.DATA)
            .order_by("-version")
            .values_list("version", flat=True)
        )[1:]
        if not older:
            return []
        unused = sorted(set(older) - versions_in_use(tenant_id))
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {TenantKey._meta.db_table} WHERE tenant_id = %s AND purpose = %s "  # noqa: S608 - names come from the model
                "AND version = ANY(%s) RETURNING version",
                [tenant_id, TenantKey.Purpose.DATA, unused],
            )
            deleted = sorted(row[0] for row in cursor.fetchall())
    keys.forget_all()  # this process's unwrapped copies of the deleted versions
    return deleted


def signing_keys_reseal(tenant_id: uuid.UUID, version: int) -> int:
    """Re-seal the tenant's signing keys still sealed by an older data-key version."""
    from .signing import signing_key_aad

    resealed = 0
    with tenant_context(tenant_id), transaction.atomic():
        for key in SigningKey.objects.select_for_update().filter(tenant_id=tenant_id):
            blob = bytes(key.wrapped_key)
            if blob[0] != envelope.FORMAT or envelope.key_version_of(blob) >= version:
                continue
            aad = signing_key_aad(tenant_id, key.fingerprint)
            key.wrapped_key = envelope.encrypt(tenant_id, envelope.decrypt(tenant_id, blob, aad), aad)
            key.save(update_fields=["wrapped_key"])
            resealed += 1
    return resealed
