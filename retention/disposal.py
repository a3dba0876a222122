"""Disposal runs: plan (find what is past its maximum), preview, approve, execute in batches.

Planning copies the references of every due record into DisposalCandidate with one INSERT ... SELECT
per category (no PHI, no per-row Python), so the preview counts and the batches read one small table.

Each batch is ONE transaction: it locks the run, takes the holds lock shared (holds.py), locks its
candidates and the records themselves, re-checks holds, approved exceptions and the policy in force
now, destroys the rest and marks them destroyed. A crash rolls the whole batch back: no record is
half-destroyed and no candidate is marked destroyed that was not. Running the run again resumes at
the first pending candidate; the certificate is issued in the transaction of the last batch, from
the candidates marked destroyed.

Every count is what the database returned (accounting.py): a batch marks destroyed exactly the
records whose ids the destroying statements returned, and refuses any difference from the records
it locked; before the certificate, the run's candidates, counters and tables are reconciled. A
difference stops the run (status `halted`, with the reason, audited) instead of issuing a certificate.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from audit import services as audit
from healthmail.accounts.four_eyes import second_person_require
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict
from healthmail.tasks import enqueue
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import accounting, certificates, holds
from .destruction import DestructionMismatch
from .models import Action, DisposalCandidate, DisposalRun, RetentionPolicy
from .policies import PERMISSION, cutoff, policies_ensure_defaults, policy_in_force
from .registry import Category, all_categories, category_get
from .services import exceptions_sql

BATCH_SIZE = 2000
SAMPLES = 5
EXECUTOR = "system:retention.disposal"
CANDIDATES = "retention_disposalcandidate"
logger = logging.getLogger(__name__)


def _due_categories(tenant, as_of: datetime.datetime, only: Sequence[str] | None) -> dict[str, tuple]:
    """category -> (Category, policy, cutoff) for destroyable categories whose policy destroys."""
    due = {}
    for category in all_categories():
        if not category.destroyable or (only and category.key not in only):
            continue
        policy = policy_in_force(tenant=tenant, category=category.key, at=as_of)
        if policy is None or policy.action != Action.DESTROY:
            continue
        due[category.key] = (category, policy, cutoff(policy, as_of))
    return due


def _insert_candidates(run: DisposalRun, category: Category, cut: datetime.datetime, subsuming: dict) -> int:
    source = category.source
    params: dict[str, Any] = {"tenant": run.tenant_id, "run": run.pk, "category": category.key, "cutoff": cut}
    conditions = [f"{source.clock} < %(cutoff)s"]
    for other, expression in category.subsumed_by:
        if other in subsuming:  # that category's destruction in this run removes these records too
            conditions.append(f"NOT ({expression} < %(subsumed_{other})s)")
            params[f"subsumed_{other}"] = subsuming[other]
    sql = (
        f"INSERT INTO {CANDIDATES} (tenant_id, run_id, category, record_id, clock_at, contact_id,"  # noqa: S608
        " source_ref, actor_ref, state, skip_reason)"
        " SELECT %(tenant)s, %(run)s, %(category)s, q.record_id, q.clock_at, q.contact_id, q.source_ref,"
        f" q.actor_ref, 'pending', '' FROM ({source.select_sql()} AND {' AND '.join(conditions)}) q"
        " UNION ALL SELECT %(tenant)s, %(run)s, %(category)s, a.record_id, a.clock_at, a.contact_id,"
        " a.source_ref, NULL, 'pending', '' FROM retention_archivedrecord a WHERE a.tenant_id = %(tenant)s"
        " AND a.category = %(category)s AND a.clock_at < %(cutoff)s"
        " ORDER BY 5, 4"  # oldest first (clock, then record id): batches take them in candidate-id order
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _preview(run: DisposalRun) -> dict:
    active = holds.active_holds(tenant=run.tenant_id)
    held_sql, held_params = holds.holds_sql(active)
    preview = {}
    today = timezone.localdate()
    with connection.cursor() as cursor:
        for key in run.categories:
            excepted_sql, excepted_params = exceptions_sql(key, today)
            cursor.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {held_sql}),"  # noqa: S608
                f" count(*) FILTER (WHERE NOT {held_sql} AND {excepted_sql}),"
                f" min(c.clock_at), max(c.clock_at) FROM {CANDIDATES} c"
                " WHERE c.tenant_id = %s AND c.run_id = %s AND c.category = %s",
                [*held_params, *held_params, *excepted_params, run.tenant_id, run.pk, key],
            )
            total, held, excepted, earliest, latest = cursor.fetchone()
            cursor.execute(
                f"SELECT c.record_id FROM {CANDIDATES} c WHERE c.tenant_id = %s AND c.run_id = %s"  # noqa: S608
                f" AND c.category = %s AND NOT {held_sql} ORDER BY c.id LIMIT %s",
                [run.tenant_id, run.pk, key, *held_params, SAMPLES],
            )
            preview[key] = {
                "candidates": total,
                "held": held,
                "excepted": excepted,
                "to_destroy": total - held - excepted,
                "earliest": earliest.isoformat() if earliest else None,
                "latest": latest.isoformat() if latest else None,
                "samples": [row[0] for row in cursor.fetchall()],
            }
    return preview


def disposal_plan(
    *,
    tenant,
    actor: Actor,
    trigger: str = "manual",
    as_of: datetime.datetime | None = None,
    categories: Sequence[str] | None = None,
) -> list[DisposalRun]:
    """Find every record past its maximum retention; one run for the categories whose policy asks
    for approval, one for those that dispose automatically (started at once)."""
    as_of = as_of or timezone.now()
    policies_ensure_defaults(tenant=tenant)
    runs = []
    with tenant_context(tenant):
        busy = set()
        for open_run in DisposalRun.objects.filter(tenant=tenant, status__in=DisposalRun.OPEN):
            busy.update(open_run.categories)
        due = {k: v for k, v in _due_categories(tenant, as_of, categories).items() if k not in busy}
        for needs_approval in (True, False):
            group = {k: v for k, v in due.items() if v[1].approval_required == needs_approval}
            if group:
                run = _plan_run(tenant, actor, trigger, as_of, group, needs_approval)
                if run is not None:
                    runs.append(run)
    for run in runs:
        if run.status == DisposalRun.Status.APPROVED:
            _start(run)
    return runs


def _plan_run(
    tenant, actor: Actor, trigger: str, as_of, group: dict, needs_approval: bool
) -> DisposalRun | None:
    with transaction.atomic():
        run = DisposalRun.objects.create(
            tenant=tenant,
            status=DisposalRun.Status.AWAITING_APPROVAL if needs_approval else DisposalRun.Status.APPROVED,
            trigger=trigger,
            as_of=as_of,
            categories=sorted(group),
            requires_approval=needs_approval,
            requested_by=actor.user,
            policy_versions={
                key: {"id": str(p.pk), "version": p.version, "max_days": p.max_retention_days}
                for key, (_, p, _) in group.items()
            },
        )
        subsuming = {key: cut for key, (_, _, cut) in group.items()}
        total = sum(_insert_candidates(run, category, cut, subsuming) for category, _, cut in group.values())
        if total == 0:
            transaction.set_rollback(True)  # nothing is due: no empty run
            return None
        run.total_candidates = total
        run.preview = _preview(run)
        run.save(update_fields=["total_candidates", "preview"])
        audit.record(
            actor=actor,
            action="retention.disposal_plan",
            target=run,
            tenant=tenant,
            details={"categories": run.categories, "candidates": total, "trigger": trigger},
        )
    return run


def _start(run: DisposalRun) -> None:
    from .tasks import disposal_run_work

    enqueue(disposal_run_work, tenant=run.tenant_id, run_id=str(run.pk))


@transaction.atomic
def disposal_approve(*, tenant, actor: Actor, run: DisposalRun, sole_officer_reason: str = "") -> DisposalRun:
    """Four eyes: neither the officer who planned the run nor one who wrote a policy version it
    applies may approve it, unless they are the sole officer (with a reason, printed on the certificate)."""
    with tenant_context(tenant):
        run = DisposalRun.objects.select_for_update().get(tenant=tenant, pk=run.pk)
        if run.status != DisposalRun.Status.AWAITING_APPROVAL:
            raise Conflict("This run is not waiting for approval.", code="not_awaiting")
        policy_ids = [planned["id"] for planned in run.policy_versions.values()]
        authors = RetentionPolicy.objects.filter(tenant=tenant, pk__in=policy_ids).values_list(
            "created_by_id", flat=True
        )
        second = second_person_require(
            tenant=tenant,
            approver=actor.user,
            authors=[run.requested_by_id, *authors],
            permission=PERMISSION,
            what="disposal run",
            sole_officer_reason=sole_officer_reason,
        )
        for key, planned in run.policy_versions.items():
            current = policy_in_force(tenant=tenant, category=key)
            if current is None or str(current.pk) != planned["id"]:
                raise Conflict(
                    f"The {category_get(key).label.lower()} policy changed after this preview; cancel "
                    "this run and plan a new one so you approve what will actually happen.",
                    code="policy_changed",
                )
        run.status, run.approved_by, run.approved_at = DisposalRun.Status.APPROVED, actor.user, timezone.now()
        run.approval_sole_officer_reason = second.sole_officer_reason
        run.save(update_fields=["status", "approved_by", "approved_at", "approval_sole_officer_reason"])
        audit.record(
            actor=actor,
            action="retention.disposal_approve",
            target=run,
            tenant=tenant,
            details={"candidates": run.total_candidates, **second.as_details()},
        )
    _start(run)
    return run


@transaction.atomic
def disposal_cancel(*, tenant, actor: Actor, run: DisposalRun, reason: str) -> DisposalRun:
    if not reason.strip():
        raise ApplicationError("Say why the run is cancelled.", code="reason")
    with tenant_context(tenant):
        run = DisposalRun.objects.select_for_update().get(tenant=tenant, pk=run.pk)
        if run.status not in (DisposalRun.Status.AWAITING_APPROVAL, DisposalRun.Status.APPROVED):
            raise Conflict("Only a run that has not started can be cancelled.", code="started")
        run.status, run.cancelled_by, run.cancel_reason = (
            DisposalRun.Status.CANCELLED,
            actor.user,
            reason.strip(),
        )
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "cancelled_by", "cancel_reason", "finished_at"])
        audit.record(
            actor=actor, action="retention.disposal_cancel", target=run, tenant=tenant, reason=reason[:500]
        )
    return run


# --- Execution ------------------------------------------------------------------------------------------


def _update_ids(
    cursor, ids: list[int], reason: str, condition: str = "TRUE", params: Sequence = ()
) -> set[int]:
    if not ids:
        return set()
    cursor.execute(
        f"UPDATE {CANDIDATES} c SET state = 'skipped', skip_reason = %s"  # noqa: S608
        f" WHERE c.id = ANY(%s) AND c.state = 'pending' AND {condition} RETURNING c.id",
        [reason, ids, *params],
    )
    return {row[0] for row in cursor.fetchall()}


def _batch(run: DisposalRun, cursor, batch_size: int, now, reference) -> tuple[str, dict] | None:
    cursor.execute(
        f"SELECT category FROM {CANDIDATES} WHERE tenant_id = %s AND run_id = %s AND state = 'pending'"  # noqa: S608
        " ORDER BY category LIMIT 1",
        [run.tenant_id, run.pk],
    )
    row = cursor.fetchone()
    if row is None:
        return None
    category = category_get(row[0])
    cursor.execute(
        f"SELECT id, record_id FROM {CANDIDATES} WHERE tenant_id = %s AND run_id = %s AND category = %s"  # noqa: S608
        " AND state = 'pending' ORDER BY id LIMIT %s FOR UPDATE",
        [run.tenant_id, run.pk, category.key, batch_size],
    )
    candidates = dict(cursor.fetchall())  # candidate id -> record id
    ids = list(candidates)
    # Lock the records themselves: nobody alters them between the checks and the destruction.
    cursor.execute(category.source.lock_sql(), [run.tenant_id, list(candidates.values())])
    present = {r[0] for r in cursor.fetchall()}
    cursor.execute(
        "SELECT record_id FROM retention_archivedrecord WHERE tenant_id = %s AND category = %s"
        " AND record_id = ANY(%s) FOR UPDATE",
        [run.tenant_id, category.key, list(candidates.values())],
    )
    archived = {r[0] for r in cursor.fetchall()}
    held_sql, held_params = holds.holds_sql(holds.active_holds(tenant=run.tenant_id))
    skipped = {"held": _update_ids(cursor, ids, "held", held_sql, held_params)}
    excepted_sql, excepted_params = exceptions_sql(category.key, timezone.localdate())
    skipped["exception"] = _update_ids(cursor, ids, "exception", excepted_sql, excepted_params)
    # The policy in force NOW decides: a retention lengthened since planning protects the record.
    cut = cutoff(policy_in_force(tenant=run.tenant_id, category=category.key, at=reference), reference)
    skipped["policy_changed"] = _update_ids(
        cursor, ids, "policy_changed", "NOT (c.clock_at < %s)" if cut else "TRUE", [cut] if cut else []
    )
    remaining = {cid: rid for cid, rid in candidates.items() if not any(cid in s for s in skipped.values())}
    in_archive = {rid for rid in remaining.values() if rid in archived}
    live = {rid for rid in remaining.values() if rid in present and rid not in in_archive}
    outcome = accounting.destroy_checked(run.tenant_id, category, in_archive, live)
    destroyed = set(outcome.ids)
    done = [cid for cid, rid in remaining.items() if rid in destroyed]
    if done:
        cursor.execute(
            f"UPDATE {CANDIDATES} SET state = 'destroyed', destroyed_at = %s, contact_id = NULL"  # noqa: S608
            " WHERE id = ANY(%s)",
            [now, done],
        )
    # Not in its table nor in the archive when the batch locked it: gone before this run reached it.
    skipped["missing"] = _update_ids(cursor, [cid for cid in remaining if cid not in set(done)], "missing")
    along = accounting.mark_removed_along(cursor, run, category, outcome, now)
    return category.key, {
        "destroyed": len(done),
        **{k: len(v) for k, v in skipped.items()},
        "destroyed_along": along,
        "rows_removed_along": {label: len(rows) for label, rows in outcome.cascaded.items()},
        "manifest_sha256": accounting.batch_digest(category.key, outcome.ids),
    }


def disposal_run_batch(*, tenant_id, run_id, batch_size: int = BATCH_SIZE, executor: str = EXECUTOR) -> bool:
    """Destroy one batch of a run (one transaction). Returns whether work remains. When what the
    database did differs from what the run planned and counted, the batch rolls back and the run
    stops (halted, with the reason, audited): it issues no certificate."""
    try:
        return _run_batch(tenant_id, run_id, batch_size, executor)
    except DestructionMismatch as error:
        _halt(tenant_id, run_id, error)
        return False


def _halt(tenant_id, run_id, error: DestructionMismatch) -> None:
    logger.error("disposal run halted: counts disagree", extra={"run": str(run_id), "code": error.code})
    with tenant_context(tenant_id):
        run = DisposalRun.objects.select_for_update().get(tenant_id=tenant_id, pk=run_id)
        run.status, run.halt_reason = DisposalRun.Status.HALTED, error.message[:2000]
        run.finished_at = run.heartbeat_at = timezone.now()
        run.save(update_fields=["status", "halt_reason", "finished_at", "heartbeat_at"])
        audit.record(
            actor=Actor.system("retention.disposal"),
            action="retention.disposal_halt",
            target=run,
            tenant=tenant_id,
            details={"code": error.code, "reason": error.message[:2000]},
        )


def _run_batch(tenant_id, run_id, batch_size: int, executor: str) -> bool:
    with tenant_context(tenant_id):
        run = DisposalRun.objects.select_for_update().filter(tenant_id=tenant_id, pk=run_id).first()
        if run is None or run.status not in (DisposalRun.Status.APPROVED, DisposalRun.Status.RUNNING):
            return False
        now = timezone.now()
        # Policy is judged at the run's moment or later (a run planned for a simulated future date
        # in tests or drills is judged at that date).
        reference = max(now, run.as_of)
        if run.status == DisposalRun.Status.APPROVED:
            run.status, run.started_at, run.executed_by = DisposalRun.Status.RUNNING, now, executor
        holds.holds_lock_shared(tenant_id)
        with connection.cursor() as cursor:
            outcome = _batch(run, cursor, batch_size, now, reference)
            if outcome is None:
                accounting.run_reconcile(cursor, run)
        if outcome is None:
            run.status, run.finished_at, run.heartbeat_at = DisposalRun.Status.COMPLETED, now, now
            run.save()
            certificate = certificates.certificate_issue(run=run)
            logger.info(
                "retention: disposal complete",
                extra={"run": str(run.pk), "destroyed": run.destroyed_count, "skipped": run.skipped_count},
            )
            audit.record(
                actor=Actor.system("retention.disposal"),
                action="retention.disposal_complete",
                target=run,
                tenant=tenant_id,
                details={
                    "destroyed": run.destroyed_count,
                    "skipped": run.skipped_count,
                    "certificate": str(certificate.pk),
                },
            )
            return False
        category, counts = outcome
        run.destroyed_count += counts["destroyed"] + sum(counts["destroyed_along"].values())
        run.skipped_count += sum(counts[k] for k in ("held", "exception", "policy_changed", "missing"))
        along = run.removed_along.setdefault(category, {})
        for label, rows in counts["rows_removed_along"].items():
            along[label] = along.get(label, 0) + rows
        run.batches_done += 1
        run.heartbeat_at = now
        run.save()
        logger.info(
            "retention: disposal batch",
            extra={"run": str(run.pk), "category": category, "batch": run.batches_done, "counts": counts},
        )
        audit.record(
            actor=Actor.system("retention.disposal"),
            action="retention.destroy",
            target=run,
            tenant=tenant_id,
            details={"category": category, "batch": run.batches_done, **counts},
        )
        return True


def disposal_run_execute(*, tenant_id, run_id, max_batches: int | None = None, **options) -> int:
    """Run batches until the run completes (or `max_batches`). Returns the batches done."""
    done = 0
    while (max_batches is None or done < max_batches) and disposal_run_batch(
        tenant_id=tenant_id, run_id=run_id, **options
    ):
        done += 1
    return done


def disposal_runs_stalled(*, older_than: datetime.timedelta = datetime.timedelta(minutes=10)) -> list[tuple]:
    """(tenant id, run id) of approved or running runs with no batch for a while: their task was
    lost (worker killed, broker restarted); the sweep enqueues them again and they resume."""

    stale_before = timezone.now() - older_than
    found = []
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        with tenant_context(tenant_id):
            for run in DisposalRun.objects.filter(
                tenant_id=tenant_id, status__in=[DisposalRun.Status.APPROVED, DisposalRun.Status.RUNNING]
            ):
                last = run.heartbeat_at or run.approved_at or run.planned_at
                if last < stale_before:
                    found.append((tenant_id, run.pk))
    return found


def candidate_counts(*, tenant, run: DisposalRun) -> dict[str, dict[str, int]]:
    """category -> {state or skip reason: count}, for the progress page."""
    counts: dict[str, dict[str, int]] = {}
    with tenant_context(tenant):
        rows = (
            DisposalCandidate.objects.filter(tenant=tenant, run=run)
            .values("category", "state", "skip_reason")
            .order_by()
            .annotate(n=Count("id"))
        )
        for row in rows:
            counts.setdefault(row["category"], {})[row["skip_reason"] or row["state"]] = row["n"]
    return counts
