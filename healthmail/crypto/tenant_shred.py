"""Shredding a whole tenant: its tenant key (TenantRootKey, the key store) and every epoch key are
destroyed, and its data and index key rows deleted. Every tenant key row in any backup is wrapped
by the destroyed tenant key, every object key (message bodies, uploads, exports, contacts) by a
destroyed epoch key: a restored backup opens nothing of the tenant with the keys that remain.

Legal holds and the certificate are the caller's (retention/tenant_shred.py); this module does the
destruction and reports what the database did.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import connection, models, transaction
from django.utils import timezone
from psycopg import sql

from healthmail.tenants.context import tenant_context

from . import keys
from .keystore import key_store
from .models import EpochKey, ObjectKey, TenantKey, TenantRootKey
from .rotation import encrypted_tables


@dataclass(frozen=True)
class TenantShred:
    """Counts from the statements that did the work (rowcounts, RETURNING), never expectations."""

    tenant_keys_destroyed: int  # tenant keys (key store) marked destroyed
    epoch_keys_destroyed: int  # epoch keys (key store) marked destroyed
    data_and_index_keys_deleted: int  # crypto_tenantkey rows deleted
    object_keys_unreadable: int  # crypto_objectkey rows left wrapped by a destroyed epoch key
    encrypted_rows: dict[str, int]  # table -> rows holding ciphertext the destroyed keys protected
    legacy_keys_wrapped_by_master_only: int  # tenant key rows a pre-tenant-key backup may hold


def _destroy_returning(model: type[models.Model], tenant_id: uuid.UUID) -> list[uuid.UUID]:
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET destroyed_at = %s WHERE tenant_id = %s AND destroyed_at IS NULL "  # noqa: S608 - names come from the model
            "RETURNING id",
            [timezone.now(), tenant_id],
        )
        return [row[0] for row in cursor.fetchall()]


def _encrypted_rows(tenant_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for target in encrypted_tables():
            any_sealed = sql.SQL(" OR ").join(
                sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in target.columns
            )
            query = sql.SQL("SELECT count(*) FROM {t} WHERE tenant_id = %s AND ({cond})").format(
                t=sql.Identifier(target.table), cond=any_sealed
            )
            cursor.execute(query.as_string(cursor.connection), [tenant_id])
            counts[target.table] = cursor.fetchone()[0]
    return counts


@transaction.atomic
def tenant_keys_shred(tenant_id: uuid.UUID) -> TenantShred:
    """Destroy every key of one tenant. The rows are marked first and the key store files destroyed
    after, in the same transaction: a failure in between leaves keys destroyed that the database
    still lists as live (they then fail to open, as shredded keys do), never the reverse."""
    with tenant_context(tenant_id):
        legacy = TenantKey.objects.filter(tenant_id=tenant_id, root_key__isnull=True).count()
        roots = _destroy_returning(TenantRootKey, tenant_id)
        epochs = _destroy_returning(EpochKey, tenant_id)
        EpochKey.objects.filter(tenant_id=tenant_id, retired_at__isnull=True).update(
            retired_at=timezone.now()
        )
        deleted = TenantKey.objects.filter(tenant_id=tenant_id)._raw_delete(connection.alias)
        object_keys = ObjectKey.objects.filter(tenant_id=tenant_id).count()
        encrypted = _encrypted_rows(tenant_id)
    for key_id in [*roots, *epochs]:
        key_store().key_destroy(tenant_id=tenant_id, key_id=key_id)
    keys.forget_all()  # this process's unwrapped copies
    return TenantShred(
        tenant_keys_destroyed=len(roots),
        epoch_keys_destroyed=len(epochs),
        data_and_index_keys_deleted=deleted,
        object_keys_unreadable=object_keys,
        encrypted_rows=encrypted,
        legacy_keys_wrapped_by_master_only=legacy,
    )
