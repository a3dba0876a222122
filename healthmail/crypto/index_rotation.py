"""Index-key rotation with a dual index while re-indexing (blind.py says which kinds rotate).

    1. add   a new index-key version, "pending": every process looks it up as well, none writes it;
    2. activate it: new and updated rows are indexed under it, lookups still query both versions;
    3. re-index: each registered re-indexer moves its rows to the new version in small batches;
    4. retire the older versions: lookups query the new one only; a retired version other than the
       first (which the kinds that never rotate keep using) is destroyed (its key row deleted).

Between steps 1-2 and 2-3 the run waits `settle_seconds` (default keys.CURRENT_TTL + 1), the time
a process may keep its view of the versions: so no process writes a version another cannot find,
and no row is written under the old version after the re-index has passed it. Each step is
idempotent and the re-indexers only write rows whose index differs, so an interrupted run resumes
where it stopped (a pending version is activated, an unfinished re-index runs again).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import QuerySet

from healthmail.tenants.context import tenant_context

from . import blind, keys
from .integrity import Damage
from .models import TenantKey

BATCH = 500
# A re-indexer moves one batch of its rows (id > after, in id order) to the write version and
# returns (rows read, rows changed, last id read, damaged rows); it locks the rows it reads.
ReindexBatch = Callable[[uuid.UUID, object | None, int], tuple[int, int, object | None, list[Damage]]]
Progress = Callable[[str, int, int], None]  # (re-indexer, rows read, rows changed)


@dataclass(frozen=True)
class Reindexer:
    name: str
    families: tuple[str, ...]
    batch: ReindexBatch


_reindexers: dict[str, Reindexer] = {}


def reindexer_register(name: str, families: tuple[str, ...], batch: ReindexBatch) -> None:
    """An app holding indexes of these kind families (re-computable from values it keeps)."""
    _reindexers[name] = Reindexer(name, families, batch)
    blind.rotating_register(*families)


@dataclass
class IndexRotation:
    version: int = 0  # the version written and looked up once done
    read: int = 0
    changed: int = 0
    destroyed: list[int] = field(default_factory=list)
    damaged: list[Damage] = field(default_factory=list)


def _index_rows(tenant_id: uuid.UUID) -> QuerySet[TenantKey]:
    return TenantKey.objects.filter(tenant_id=tenant_id, purpose=blind.INDEX)


def _settle(tenant_id: uuid.UUID, seconds: float | None) -> None:
    time.sleep(keys.CURRENT_TTL + 1 if seconds is None else seconds)
    blind.forget_versions(tenant_id)


def index_version_add(tenant_id: uuid.UUID) -> int:
    """Step 1: the new version, looked up but not written (a pending one is reused)."""
    blind.versions(tenant_id)  # the first version exists before a second is made
    with tenant_context(tenant_id):
        pending = _index_rows(tenant_id).filter(lookup_state=TenantKey.LookupState.PENDING).first()
    version = (
        pending.version if pending else keys.create_version(tenant_id, blind.INDEX, lookup_state="pending")
    )
    blind.forget_versions(tenant_id)
    return version


def index_version_activate(tenant_id: uuid.UUID) -> int:
    """Step 2: the pending version is written from now on; returns the version written."""
    with tenant_context(tenant_id):
        _index_rows(tenant_id).filter(lookup_state=TenantKey.LookupState.PENDING).update(
            lookup_state=TenantKey.LookupState.ACTIVE
        )
    blind.forget_versions(tenant_id)
    return blind.versions(tenant_id).write


def reindex(
    tenant_id: uuid.UUID,
    result: IndexRotation,
    *,
    batch_size: int = BATCH,
    max_batches: int | None = None,
    progress: Progress | None = None,
) -> None:
    """Step 3: every registered re-indexer over all its rows (or `max_batches` of each)."""
    for reindexer in _reindexers.values():
        after: object | None = None
        batches = 0
        while max_batches is None or batches < max_batches:
            read, changed, after, damaged = reindexer.batch(tenant_id, after, batch_size)
            if not read:
                break
            batches += 1
            result.read += read
            result.changed += changed
            result.damaged += damaged
            if progress:
                progress(reindexer.name, result.read, result.changed)


@transaction.atomic
def index_versions_retire(tenant_id: uuid.UUID) -> list[int]:
    """Step 4: every version older than the one written is no longer looked up; the retired ones
    other than the first are destroyed. Returns the versions destroyed."""
    write = blind.versions(tenant_id).write
    with tenant_context(tenant_id):
        older = (
            _index_rows(tenant_id)
            .filter(version__lt=write)
            .exclude(lookup_state=TenantKey.LookupState.RETIRED)
        )
        older.update(lookup_state=TenantKey.LookupState.RETIRED)
        with connection.cursor() as cursor:  # the versions the statement destroyed, not a count before it
            cursor.execute(
                f"DELETE FROM {TenantKey._meta.db_table} WHERE tenant_id = %s AND purpose = %s"  # noqa: S608 - the model's table
                " AND version < %s AND version > %s AND lookup_state = %s RETURNING version",
                [tenant_id, blind.INDEX, write, blind.BASE_VERSION, TenantKey.LookupState.RETIRED],
            )
            destroyed = sorted(row[0] for row in cursor.fetchall())
    blind.forget_versions(tenant_id)
    return destroyed


def index_rotate(
    tenant_id: uuid.UUID,
    *,
    settle_seconds: float | None = None,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> IndexRotation:
    """Run (or resume) a whole index-key rotation of one tenant. Rows a re-indexer cannot read
    are reported in the result and the older version is then kept (looked up) rather than retired."""
    result = IndexRotation()
    blind.forget_versions(tenant_id)
    state = blind.versions(tenant_id)
    with tenant_context(tenant_id):
        pending = _index_rows(tenant_id).filter(lookup_state=TenantKey.LookupState.PENDING).exists()
    if pending or not state.reindexing:  # a fresh rotation, or one stopped before activation
        index_version_add(tenant_id)
        _settle(tenant_id, settle_seconds)
        index_version_activate(tenant_id)
        _settle(tenant_id, settle_seconds)
    result.version = blind.versions(tenant_id).write
    reindex(tenant_id, result, batch_size=batch_size, progress=progress)
    if not result.damaged:
        result.destroyed = index_versions_retire(tenant_id)
    return result
