"""Finding records past their archive age and moving them, one transaction per batch.

A record is due when its clock is older than the policy's archive age (or, when the action at the
maximum is "archive", older than the maximum), it is not held, and its category's archive condition
lets it move now. Each batch takes the holds lock shared (holds.py) and reads the active holds after
it, like a disposal batch, so a hold committed before the batch is always honoured. Batches walk
the due records in clock order with a keyset, so records an archiver leaves live (a held part) are
passed over, not found again and again.
"""

from __future__ import annotations

import datetime

from django.db import connection
from django.utils import timezone

from audit import services as audit
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context

from ..models import Action, RetentionPolicy
from ..registry import Category

ARCHIVE_BATCH = 500


def archive_age_days(policy: RetentionPolicy | None) -> int | None:
    """Days after which a record moves: the archive age, else the maximum when the action at the
    maximum is to archive; None: never."""
    if policy is None:
        return None
    if policy.archive_after_days is not None:
        return policy.archive_after_days
    return policy.max_retention_days if policy.action == Action.ARCHIVE else None


def archive_due(*, tenant, as_of: datetime.datetime | None = None, batch: int = ARCHIVE_BATCH) -> int:
    """Move every due record of every archivable category. Returns the records moved (those moved
    along with another record included)."""
    from ..policies import policies_ensure_defaults, policy_in_force
    from ..registry import all_categories

    as_of = as_of or timezone.now()
    policies_ensure_defaults(tenant=tenant)
    moved = 0
    for category in all_categories():
        if category.archive is None:
            continue
        days = archive_age_days(policy_in_force(tenant=tenant, category=category.key, at=as_of))
        if days is None:
            continue
        cut, after = as_of - datetime.timedelta(days=days), None
        while True:
            count, after = _archive_batch(tenant, category, cut, as_of, after, batch)
            moved += count
            if after is None:
                break
    return moved


def _archive_batch(tenant, category: Category, cut, as_of, after, batch: int) -> tuple[int, tuple | None]:
    """Move one batch. Returns the records moved and the keyset to continue after (None: done)."""
    from .. import holds

    with tenant_context(tenant), connection.cursor() as cursor:
        holds.holds_lock_shared(tenant.pk)
        active = holds.active_holds(tenant=tenant)
        cursor.execute(
            *_due_query(category, tenant, cut, as_of, after, batch, holds.holds_sql(active, alias="q"))
        )
        rows = cursor.fetchall()
        if not rows:
            return 0, None
        ids = [row[0] for row in rows]
        cursor.execute(category.source.lock_sql(), [tenant.pk, ids])
        moved = category.archive(category, tenant.pk, ids, active)
        if moved:
            audit.record(
                actor=Actor.system("retention.archive"),
                action="retention.archive",
                tenant=tenant,
                details={
                    "category": category.key,
                    "count": len(moved.get(category.key, ())),
                    "moved_along": {k: len(v) for k, v in moved.items() if k != category.key},
                },
            )
        last = (rows[-1][1], rows[-1][0]) if len(rows) == batch else None
        return sum(len(v) for v in moved.values()), last


def _due_query(category: Category, tenant, cut, as_of, after, batch, held) -> tuple[str, list]:
    """The due-for-archive query with positional parameters (the hold condition needs them). The
    hold condition is NULL for a record without a contact under a contact-scoped hold: not held."""
    held_sql, held_params = held
    source = category.source
    select = source.select_sql().replace("%(tenant)s", "%s")
    condition, params = f"{source.clock} < %s", [cut]
    if category.archive_condition:
        condition += f" AND ({category.archive_condition.replace('%(as_of)s', '%s')})"
        params += [as_of] * category.archive_condition.count("%(as_of)s")
    keyset, keyset_params = (
        ("", []) if after is None else (" AND (q.clock_at, q.record_id) > (%s, %s)", list(after))
    )
    return (
        "SELECT q.record_id, q.clock_at FROM (SELECT %s::text AS category, s.* FROM"  # noqa: S608
        f" ({select} AND {condition}) s) q WHERE NOT COALESCE({held_sql}, FALSE){keyset}"
        " ORDER BY q.clock_at, q.record_id LIMIT %s",
        [category.key, tenant.pk, *params, *held_params, *keyset_params, batch],
    )
