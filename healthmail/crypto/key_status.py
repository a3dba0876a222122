"""What `rotate_keys --status` reports per tenant: key versions and the rows each seals, how many
values each data-key version encrypted (usage.py) against the rotation threshold, the epoch's age,
per-contact keys, damaged rows. Every figure is read from the database or the key store's rows."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from healthmail.tenants.context import tenant_context

from . import usage
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
        threshold: int = settings.HEALTHMAIL_DATA_KEY_ROTATE_AFTER
        return self.encryptions >= threshold


@dataclass
class KeyStatus:
    data_keys: list[DataKeyVersion] = field(default_factory=list)
    index_versions: list[int] = field(default_factory=list)
    tenant_key: str = "none yet"
    legacy_wrapped: int = 0  # tenant key rows wrapped by the master key alone
    epoch_age_seconds: float | None = None
    epochs_destroyed: int = 0
    object_keys: int = 0
    damaged: list[str] = field(default_factory=list)


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
            else:
                status.index_versions.append(row.version)
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
    if scan:
        status.damaged = [str(damage) for damage in damaged_rows(tenant_id)]
    return status
