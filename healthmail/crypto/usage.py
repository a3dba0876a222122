"""How many values each tenant data-key version has encrypted, counted cheaply.

A random 96-bit nonce per value keeps collisions negligible only up to a few million values per
key (envelope.py), so a data key should be rotated before it has sealed
`HEALTHMAIL_DATA_KEY_ROTATE_AFTER` values (`rotate_keys --status` says when). Counting each
encryption with a database write would cost more than the encryption: counts gather in memory per
process and are appended to `crypto_keyusage` (one INSERT for every key with counts) once
FLUSH_EVERY values or FLUSH_SECONDS have passed. Appending, not updating, so parallel writers never
wait on a counter row. The INSERT runs in the encrypting transaction, so a rolled-back write is not
counted either; a process that dies loses at most what it had not flushed: the counts can be low
by that much, never high.
"""

from __future__ import annotations

import threading
import time
import uuid

from django.db import connection
from django.db.models import Sum

from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import KeyUsage

FLUSH_EVERY = 1000
FLUSH_SECONDS = 30.0

_lock = threading.Lock()
_pending: dict[tuple[uuid.UUID, int], int] = {}
_last_flush = time.monotonic()


def count(tenant_id: uuid.UUID, version: int, values: int = 1) -> None:
    global _last_flush
    with _lock:
        key = (tenant_id, version)
        _pending[key] = _pending.get(key, 0) + values
        due = _pending[key] >= FLUSH_EVERY or time.monotonic() - _last_flush >= FLUSH_SECONDS
        if not due:
            return
        taken = dict(_pending)
        _pending.clear()
        _last_flush = time.monotonic()
    flush(taken)


def flush(counts: dict[tuple[uuid.UUID, int], int] | None = None) -> None:
    """Add the pending counts to their keys (all of them when `counts` is None)."""
    if counts is None:
        with _lock:
            counts = dict(_pending)
            _pending.clear()
    for (tenant_id, version), values in counts.items():
        # A count made in a transaction that created its tenant and then rolled back names no tenant:
        # it is dropped (the foreign key is only checked at commit, too late to skip the row).
        with tenant_context(tenant_id), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {KeyUsage._meta.db_table} (tenant_id, version, encryptions, recorded_at) "  # noqa: S608 - names come from the models
                f"SELECT id, %s, %s, now() FROM {Tenant._meta.db_table} WHERE id = %s",
                [version, values, tenant_id],
            )


def encryptions(tenant_id: uuid.UUID) -> dict[int, int]:
    """Data-key version -> values it encrypted (as flushed)."""
    with tenant_context(tenant_id):
        rows = (
            KeyUsage.objects.filter(tenant_id=tenant_id).values("version").annotate(total=Sum("encryptions"))
        )
        return {row["version"]: row["total"] for row in rows}
