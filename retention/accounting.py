"""Disposal accounting: every number a run reports is what the database returned.

A batch destroys through `destroy_checked`, which compares the ids the destroyer's statements
returned with the records the batch asked it to destroy (those it found and locked); rows of other
tables that went with them are counted too, and a pending candidate of the run whose record went
that way is marked destroyed in its own category (`mark_removed_along`). Before a certificate is
issued, `run_reconcile` checks the run's candidates against its counters and against the tables
themselves: no record counted destroyed is still there, none counted missing is. Any difference
raises DestructionMismatch; the run stops (halted, with the reason) and no certificate is issued.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.db import connection

from .destruction import REMAINS_SQL, Destroyed, DestructionMismatch, shred_keys
from .models import ArchivedRecord
from .registry import Category, category_get

CANDIDATES = "retention_disposalcandidate"
ARCHIVE = "retention_archivedrecord"


def _expect(category: Category, where: str, asked: set[str], got: list[str]) -> None:
    returned = set(got)
    if returned != asked or len(got) != len(returned):
        raise DestructionMismatch(
            f"{category.label}: the database destroyed {len(returned & asked)} of the {len(asked)} {where} "
            f"records this batch destroys ({len(asked - returned)} not destroyed, "
            f"{len(returned - asked)} not asked for). The run is stopped and no certificate is issued.",
            code="destroyed_mismatch",
        )


def _destroy_archived(tenant_id, category: Category, record_ids: set[str]) -> list[str]:
    """Archived records go with every object key their sealed parts use (content, portal replies):
    crypto-shredding, as for live records; the snapshot goes with the row."""
    rows = ArchivedRecord.objects.filter(tenant_id=tenant_id, category=category.key, record_id__in=record_ids)
    keys = [
        key
        for content, parts in rows.values_list("content_key_id", "part_key_ids")
        for key in (content, *parts)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {ARCHIVE} WHERE tenant_id = %s AND category = %s AND record_id = ANY(%s)"  # noqa: S608
            " RETURNING record_id",
            [tenant_id, category.key, list(record_ids)],
        )
        gone = [row[0] for row in cursor.fetchall()]
    shred_keys(tenant_id, keys)
    return gone


def destroy_checked(tenant_id, category: Category, archived: set[str], live: set[str]) -> Destroyed:
    """Destroy the batch's archived and live records; refuse unless the database destroyed exactly
    those (a destroyer that returns fewer or other ids, or a row that vanished in between)."""
    result = Destroyed([])
    if archived:
        gone = _destroy_archived(tenant_id, category, archived)
        _expect(category, "archived", archived, gone)
        result.ids.extend(gone)
    if live:
        outcome = category.destroy(category, tenant_id, sorted(live))
        _expect(category, "live", live, outcome.ids)
        result.ids.extend(outcome.ids)
        result.cascaded, result.removed = outcome.cascaded, outcome.removed
    return result


def mark_removed_along(cursor, run, category: Category, outcome: Destroyed, now) -> dict[str, int]:
    """Pending candidates of the run's other categories whose record went with this batch's records
    (a portal copy with its message): destroyed, counted in their own category. -> {category: n}"""
    removed = {label: list(ids) for label, ids in outcome.cascaded.items()}
    if outcome.removed:
        removed.setdefault(category.source.model, []).extend(outcome.ids)
    marked = {}
    for key in run.categories:
        other = category_get(key)
        ids = removed.get(other.source.model)
        if key == category.key or not ids:
            continue
        cursor.execute(
            f"UPDATE {CANDIDATES} SET state = 'destroyed', destroyed_at = %s, contact_id = NULL"  # noqa: S608
            " WHERE tenant_id = %s AND run_id = %s AND category = %s AND state = 'pending'"
            " AND record_id = ANY(%s) RETURNING id",
            [now, run.tenant_id, run.pk, key, ids],
        )
        if count := len(cursor.fetchall()):
            marked[key] = count
    return marked


def batch_digest(category: str, record_ids: Iterable[str]) -> str:
    """SHA-256 of the batch's manifest lines (same format as the certificate's manifest)."""
    digest = hashlib.sha256()
    for record_id in sorted(record_ids):
        digest.update(f"{category}\t{record_id}\n".encode())
    return digest.hexdigest()


def _still_there(cursor, run, category: Category, state: str, reason: str = "") -> int:
    """Candidates in `state` (and skip reason) whose record is still in its table or the archive."""
    source = category.source
    remains = REMAINS_SQL.get(category.destroy, "TRUE")
    params = [run.tenant_id, run.pk, category.key, state, reason]
    cursor.execute(
        f"SELECT count(*) FROM {CANDIDATES} c WHERE c.tenant_id = %s AND c.run_id = %s"  # noqa: S608
        " AND c.category = %s AND c.state = %s AND c.skip_reason = %s AND (EXISTS (SELECT 1 FROM"
        f" {source.table} r WHERE r.tenant_id = c.tenant_id AND r.{source.pk_column} ="
        f" c.record_id::{source.pk_cast} AND ({remains})) OR EXISTS (SELECT 1 FROM {ARCHIVE} a"
        " WHERE a.tenant_id = c.tenant_id AND a.category = c.category AND a.record_id = c.record_id))",
        params,
    )
    return cursor.fetchone()[0]


def destroyed_still_there(*, run) -> int:
    """Records of a run counted as destroyed that are in the database (tenant context active)."""
    with connection.cursor() as cursor:
        return sum(_still_there(cursor, run, category_get(key), "destroyed") for key in run.categories)


def run_reconcile(cursor, run) -> None:
    """Before the certificate: planned = destroyed + skipped, the run's counters agree with its
    candidates, and the tables agree with both. Raises DestructionMismatch with every problem."""
    cursor.execute(
        f"SELECT count(*), count(*) FILTER (WHERE state = 'destroyed'),"  # noqa: S608
        " count(*) FILTER (WHERE state = 'skipped'), count(*) FILTER (WHERE state = 'pending')"
        f" FROM {CANDIDATES} WHERE tenant_id = %s AND run_id = %s",
        [run.tenant_id, run.pk],
    )
    total, destroyed, skipped, pending = cursor.fetchone()
    problems = []
    if total != run.total_candidates:
        problems.append(f"{total} candidates are recorded but {run.total_candidates} were planned")
    if pending:
        problems.append(f"{pending} candidates are still pending")
    if destroyed != run.destroyed_count:
        problems.append(
            f"{destroyed} candidates are marked destroyed but the batches destroyed {run.destroyed_count}"
        )
    if skipped != run.skipped_count:
        problems.append(
            f"{skipped} candidates are marked skipped but the batches skipped {run.skipped_count}"
        )
    for key in run.categories:
        category = category_get(key)
        if there := _still_there(cursor, run, category, "destroyed"):
            problems.append(f"{there} {category.label.lower()} counted as destroyed are still there")
        if there := _still_there(cursor, run, category, "skipped", "missing"):
            problems.append(f"{there} {category.label.lower()} counted as missing are there")
    if problems:
        raise DestructionMismatch(
            "The disposal run's counts disagree with the database: "
            + "; ".join(problems)
            + ". The run is stopped and no certificate is issued.",
            code="run_mismatch",
        )
