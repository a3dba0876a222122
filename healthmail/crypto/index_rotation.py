"""Index-key rotation with a dual index while re-indexing (blind.py says which kinds rotate).

    1. add   a new index-key version, "pending": every process looks it up as well, none writes it;
             chained kinds (blind.py) write their index under it beside the old one ("next" column);
    2. activate it: first every chained holder's rows without a next index get one (fill, in
       batches), then new and updated rows are indexed under it, lookups still query both versions;
    3. re-index: each registered re-indexer moves its rows to the new version in small batches (the
       contacts': phone indexes, external-id links, clinical and demographic tokens), and each
       chained holder's next index replaces its index (swap);
    4. retire the older versions: lookups query the new one only; a retired version other than the
       first (chained indexes start from it, blind.py) is destroyed (its key row deleted).
       Chain keys are kept: a chained index under version n is computed through all of them.

A comparison between chained indexes of two rows stays true at every step: before the fill both
rows hold the old index; after it every row holds the old index or (swapped) the new one, and an
unswapped row the new one as its next index. Comparisons match a row's index or next index with the
other's, in both directions and whatever the comparing process's view of the stage (the SQL of the
gate and the segments, consent/gate.py); done in Python they also take each index's successor
(`blind.candidates`). No row holds only the old index once a row holds only the new one: the fill
is done (and every process writes next indexes, a settle after step 1) before activation, and a
write computes its index and its next index from one view of the stage (`blind.blind_index_pair`):
two reads straddling the activation made a row holding the old index alone after the fill had
passed it, which no SQL comparison matched once its partner was swapped.

A next index written by a writer slower than the settle after the swap has passed its row is swapped
in by a second pass before the older version is retired, or (later still) at the start of the next
rotation, before any row is filled: a fill passes rows holding a next index, and the swap would then
bring in an index one version too old. Until then the comparisons in both directions match it.

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
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from psycopg import sql

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


def reindexer_names() -> list[str]:
    """The holders a rotation recomputes from values, in the order it moves them."""
    return list(_reindexers)


@dataclass(frozen=True)
class ChainedColumn:
    """A column of chained indexes (bytea) or tokens (bigint[]) and its "next" column."""

    table: str
    column: str
    next_column: str
    kind: str
    tokens: bool = False

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


_chained: dict[str, ChainedColumn] = {}


def chained_register(column: ChainedColumn) -> None:
    """An app holding indexes of a chained kind (blind.py) that it cannot recompute from values."""
    _chained[column.name] = column
    blind.chained_register(blind.family(column.kind))


def _identifiers(column: ChainedColumn) -> dict[str, sql.Identifier]:
    return {
        "t": sql.Identifier(column.table),
        "col": sql.Identifier(column.column),
        "next": sql.Identifier(column.next_column),
    }


def chain_fill_batch(
    tenant_id: uuid.UUID, column: ChainedColumn, version: int, after: object | None, size: int
) -> tuple[int, object | None]:
    """Give up to `size` rows without a next index (id > after) their index under `version`,
    computed from the stored one; the rows are locked while read and written."""
    query = sql.SQL(
        "SELECT id, {col} FROM {t} WHERE tenant_id = %s AND {col} IS NOT NULL AND {next} IS NULL"
        " AND id > %s ORDER BY id LIMIT %s FOR UPDATE"
    ).format(**_identifiers(column))
    update = sql.SQL("UPDATE {t} SET {next} = %s WHERE id = %s").format(**_identifiers(column))
    with tenant_context(tenant_id), transaction.atomic(), connection.cursor() as cursor:
        start = uuid.UUID(int=0) if after is None else uuid.UUID(str(after))
        cursor.execute(query.as_string(cursor.connection), [tenant_id, start, size])
        rows = cursor.fetchall()
        if not rows:
            return 0, after
        values: list[tuple[Any, Any]]
        if column.tokens:
            values = [
                ([blind.token_step(tenant_id, column.kind, version, t) for t in stored], pk)
                for pk, stored in rows
            ]
        else:
            values = [
                (blind.chain_step(tenant_id, column.kind, version, bytes(stored)), pk) for pk, stored in rows
            ]
        cursor.executemany(update.as_string(cursor.connection), values)
    return len(rows), rows[-1][0]


def chain_swap_batch(
    tenant_id: uuid.UUID, column: ChainedColumn, after: object | None, size: int
) -> tuple[int, object | None]:
    """Up to `size` rows with a next index (id > after, in id order: one pass over the table, not
    a scan per batch) take it as their index. Returns (rows moved, last id)."""
    # The rows picked once (a CTE): a subquery under IN may be re-scanned per row, each scan
    # picking rows the update has not yet moved, with no limit in effect.
    query = sql.SQL(
        "WITH picked AS MATERIALIZED (SELECT id FROM {t} WHERE tenant_id = %s AND id > %s"
        " AND {next} IS NOT NULL ORDER BY id LIMIT %s FOR UPDATE)"
        " UPDATE {t} AS r SET {col} = r.{next}, {next} = NULL FROM picked WHERE r.id = picked.id"
        " RETURNING r.id"
    ).format(**_identifiers(column))
    with tenant_context(tenant_id), transaction.atomic(), connection.cursor() as cursor:
        start = uuid.UUID(int=0) if after is None else uuid.UUID(str(after))
        cursor.execute(query.as_string(cursor.connection), [tenant_id, start, size])
        moved = [row[0] for row in cursor.fetchall()]
    return len(moved), (max(moved) if moved else after)


def chain_fill(
    tenant_id: uuid.UUID, version: int, *, batch_size: int = BATCH, max_batches: int | None = None
) -> int:
    """Every chained holder's rows get their next index under the pending `version`."""
    filled = 0
    for column in _chained.values():
        after: object | None = None
        batches = 0
        while max_batches is None or batches < max_batches:
            read, after = chain_fill_batch(tenant_id, column, version, after, batch_size)
            if not read:
                break
            batches += 1
            filled += read
    return filled


def chained_next_counts(tenant_id: uuid.UUID) -> dict[str, int]:
    """Holder column -> rows holding a next index (a rotation of chained kinds under way)."""
    found: dict[str, int] = {}
    with tenant_context(tenant_id), connection.cursor() as cursor:
        for column in _chained.values():
            query = sql.SQL("SELECT count(*) FROM {t} WHERE tenant_id = %s AND {next} IS NOT NULL").format(
                **_identifiers(column)
            )
            cursor.execute(query.as_string(cursor.connection), [tenant_id])
            count = int(cursor.fetchone()[0])
            if count:
                found[column.name] = count
    return found


@dataclass
class IndexRotation:
    version: int = 0  # the version written and looked up once done
    read: int = 0
    changed: int = 0
    filled: int = 0  # chained holders' rows given their next index
    rekeyed: int = 0  # chained holders' rows whose next index was swapped in
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
    if pending:
        version = pending.version
    else:
        blind.forget_versions(tenant_id)
        if not blind.versions(tenant_id).reindexing:
            # A next index a writer slower than the last rotation's settle left behind is under the
            # version written now: swapped in before a new one is filled (a fill passes rows that
            # hold one, and the swap would then bring a version too old into the index).
            chain_swap(tenant_id, IndexRotation())
        newest = keys.key_row(tenant_id, blind.INDEX, None)
        version = (newest.version if newest else blind.BASE_VERSION) + 1
        # The chain key first: a process seeing the pending version can compute next indexes.
        if keys.key_row(tenant_id, blind.CHAIN, version) is None:
            keys.create_version(tenant_id, blind.CHAIN, version=version)
        version = keys.create_version(tenant_id, blind.INDEX, lookup_state="pending", version=version)
    blind.forget_versions(tenant_id)
    return version


def index_version_activate(tenant_id: uuid.UUID, *, batch_size: int = BATCH) -> int:
    """Step 2: chained holders' rows get their next index, then the pending version is written
    from now on; returns the version written."""
    blind.forget_versions(tenant_id)
    pending = blind.versions(tenant_id).pending
    if pending is not None:
        chain_fill(tenant_id, pending, batch_size=batch_size)
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
            # A record is reported once, however many re-indexers (or passes) meet it.
            known = {damage.record for damage in result.damaged}
            result.damaged += [damage for damage in damaged if damage.record not in known]
            if progress:
                progress(reindexer.name, result.read, result.changed)
    if blind.versions(tenant_id).pending is None:  # never swap while next indexes are being filled
        chain_swap(tenant_id, result, batch_size=batch_size, max_batches=max_batches, progress=progress)


def chain_swap(
    tenant_id: uuid.UUID,
    result: IndexRotation,
    *,
    batch_size: int = BATCH,
    max_batches: int | None = None,
    progress: Progress | None = None,
) -> None:
    """Every chained holder's rows holding a next index take it as their index."""
    for column in _chained.values():
        batches, last = 0, None
        while max_batches is None or batches < max_batches:
            moved, last = chain_swap_batch(tenant_id, column, last, batch_size)
            if not moved:
                break
            batches += 1
            result.rekeyed += moved
            if progress:
                progress(column.name, result.filled, result.rekeyed)


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
        version = index_version_add(tenant_id)
        _settle(tenant_id, settle_seconds)
        result.filled = chain_fill(tenant_id, version, batch_size=batch_size)
        index_version_activate(tenant_id, batch_size=batch_size)
        _settle(tenant_id, settle_seconds)
    result.version = blind.versions(tenant_id).write
    reindex(tenant_id, result, batch_size=batch_size, progress=progress)
    if chained_next_counts(tenant_id):  # a write slower than the settle left a next index behind
        _settle(tenant_id, settle_seconds)
        reindex(tenant_id, result, batch_size=batch_size, progress=progress)
    if not result.damaged:
        result.destroyed = index_versions_retire(tenant_id)
    return result
