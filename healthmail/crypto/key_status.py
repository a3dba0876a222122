"""What `rotate_keys --status` reports per tenant: key versions and the rows each seals, how many
values each data-key version encrypted (usage.py) against the rotation threshold, the index-key
versions and whether a re-index is under way, each live epoch key with the object keys it wraps
(per-contact keys counted per table) against the same threshold, damaged rows. Every figure is read
from the database or the key store's rows."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.db import connection, models
from django.db.models import Count
from django.utils import timezone
from psycopg import sql

from healthmail.tenants.context import tenant_context

from . import index_rotation, rowkeys, usage
from .integrity import damaged_rows
from .key_versions import rows_per_version
from .models import EpochKey, ObjectKey, TenantKey, TenantRootKey


@dataclass
class DataKeyVersion:
    version: int
    rows: int  # rows with at least one value sealed by it, over every table
    encryptions: int

    @property
    def rotation_due(self) -> bool:
        return self.encryptions >= _threshold()


def _threshold() -> int:
    threshold: int = settings.HEALTHMAIL_DATA_KEY_ROTATE_AFTER
    return threshold


@dataclass
class EpochUsage:
    """A live epoch key and the object keys it wraps now (each wrap is one AES-GCM encryption under
    it, with a random nonce: the same bound as a data key's)."""

    epoch_id: uuid.UUID
    age_seconds: float
    current: bool
    object_keys: int
    row_keys: dict[str, int]  # table -> per-row keys (contacts' and the like) among them

    @property
    def rotation_due(self) -> bool:
        return self.object_keys >= _threshold()


@dataclass
class KeyStatus:
    data_keys: list[DataKeyVersion] = field(default_factory=list)
    index_versions: list[int] = field(default_factory=list)
    index_states: dict[int, str] = field(default_factory=dict)  # version -> pending/active/retired
    chain_versions: list[int] = field(default_factory=list)  # chain keys (chained kinds, blind.py)
    chained_unswapped: dict[str, int] = field(default_factory=dict)  # holder -> rows with a next index
    epochs: list[EpochUsage] = field(default_factory=list)
    tenant_key: str = "none yet"
    legacy_wrapped: int = 0  # tenant key rows wrapped by the master key alone
    epoch_age_seconds: float | None = None
    epochs_destroyed: int = 0
    object_keys: int = 0
    damaged: list[str] = field(default_factory=list)

    @property
    def reindexing(self) -> bool:
        """An index-key rotation is under way (more than one version looked up)."""
        return sum(state != "retired" for state in self.index_states.values()) > 1


def _column(model: type[models.Model], attname: str) -> str:
    return str(next(f.column for f in model._meta.concrete_fields if f.attname == attname))


def _row_keys_per_epoch(tenant_id: uuid.UUID) -> dict[uuid.UUID, dict[str, int]]:
    found: dict[uuid.UUID, dict[str, int]] = {}
    with connection.cursor() as cursor:
        for model in apps.get_models():
            name = rowkeys.row_key_field(model)
            if name is None:
                continue
            query = sql.SQL(
                "SELECT o.epoch_id, count(*) FROM {keys} o JOIN {table} t ON t.{column} = o.id "
                "WHERE o.tenant_id = %s AND t.tenant_id = %s AND o.epoch_id IS NOT NULL GROUP BY o.epoch_id"
            ).format(
                keys=sql.Identifier(ObjectKey._meta.db_table),
                table=sql.Identifier(model._meta.db_table),
                column=sql.Identifier(_column(model, name)),
            )
            cursor.execute(query.as_string(cursor.connection), [tenant_id, tenant_id])
            for epoch_id, count in cursor.fetchall():
                found.setdefault(epoch_id, {})[model._meta.db_table] = count
    return found


def key_status(tenant_id: uuid.UUID, *, scan: bool = True) -> KeyStatus:
    status = KeyStatus()
    rows: Counter[int] = Counter()
    for counts in rows_per_version(tenant_id).values():
        rows.update(counts)
    counted = usage.encryptions(tenant_id)
    with tenant_context(tenant_id):
        for row in TenantKey.objects.filter(tenant_id=tenant_id).order_by("purpose", "version"):
            if row.purpose == TenantKey.Purpose.DATA:
                status.data_keys.append(
                    DataKeyVersion(row.version, rows[row.version], counted.get(row.version, 0))
                )
            elif row.purpose == TenantKey.Purpose.CHAIN:
                status.chain_versions.append(row.version)
            else:
                status.index_versions.append(row.version)
                status.index_states[row.version] = row.lookup_state
            status.legacy_wrapped += row.root_key_id is None
        root = TenantRootKey.objects.filter(tenant_id=tenant_id).first()
        if root is not None:
            status.tenant_key = "destroyed" if root.destroyed_at else "live"
        current = EpochKey.objects.filter(tenant_id=tenant_id, retired_at__isnull=True).first()
        if current is not None:
            status.epoch_age_seconds = (timezone.now() - current.created_at).total_seconds()
        status.epochs_destroyed = EpochKey.objects.filter(
            tenant_id=tenant_id, destroyed_at__isnull=False
        ).count()
        status.object_keys = ObjectKey.objects.filter(tenant_id=tenant_id).count()
        wrapped = dict(
            ObjectKey.objects.filter(tenant_id=tenant_id, epoch__isnull=False)
            .values("epoch_id")
            .annotate(total=Count("id"))
            .values_list("epoch_id", "total")
        )
        row_keys = _row_keys_per_epoch(tenant_id)
        now = timezone.now()
        for epoch in EpochKey.objects.filter(tenant_id=tenant_id, destroyed_at__isnull=True):
            status.epochs.append(
                EpochUsage(
                    epoch.pk,
                    (now - epoch.created_at).total_seconds(),
                    epoch.retired_at is None,
                    wrapped.get(epoch.pk, 0),
                    row_keys.get(epoch.pk, {}),
                )
            )
    status.chained_unswapped = index_rotation.chained_next_counts(tenant_id)
    if scan:
        status.damaged = [str(damage) for damage in damaged_rows(tenant_id)]
    return status
