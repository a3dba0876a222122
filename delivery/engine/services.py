"""Source-level controls the campaigns and journeys code calls: cancel, pause, resume.

Rows already claimed by a worker (state `sending`) finish their transaction; every queued or deferred
row of the source is affected at once (one UPDATE in the tenant's context).
"""

from __future__ import annotations

import functools

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit import services as audit
from delivery.models import Message
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

State = Message.State
WAITING = (State.QUEUED, State.DEFERRED)


def _waiting(tenant: Tenant, source_type: str, source_id: str) -> QuerySet[Message]:
    return Message.objects.filter(
        tenant=tenant, source_type=source_type, source_id=str(source_id), state__in=WAITING
    )


def messages_cancel_for_source(
    *, tenant: Tenant, source_type: str, source_id: str, actor: Actor | None = None, reason: str = ""
) -> int:
    """Every message of the source not yet sent becomes `cancelled` (final). Returns how many."""
    now = timezone.now()
    with tenant_context(tenant):
        count = _waiting(tenant, source_type, source_id).update(
            state=State.CANCELLED,
            state_reason=(reason or f"{source_type} cancelled")[:300],
            finished_at=now,
            updated_at=now,
        )
        audit.record(
            actor=actor or Actor.system("delivery"),
            action="delivery.cancel_source",
            target=("delivery.message", ""),
            tenant=tenant,
            reason=reason,
            details={"source_type": source_type, "source_id": str(source_id), "cancelled": count},
        )
    return count


def messages_pause_for_source(*, tenant: Tenant, source_type: str, source_id: str) -> int:
    """Hold the source's waiting messages: workers skip them until `messages_resume_for_source`."""
    with tenant_context(tenant):
        return (
            _waiting(tenant, source_type, source_id)
            .filter(held=False)
            .update(held=True, updated_at=timezone.now())
        )


def messages_resume_for_source(*, tenant: Tenant, source_type: str, source_id: str) -> int:
    with tenant_context(tenant):
        waiting = _waiting(tenant, source_type, source_id).filter(held=True)
        streams = set(waiting.values_list("stream", flat=True).distinct())
        count = waiting.update(held=False, updated_at=timezone.now())
    from delivery import tasks

    for stream in streams:
        transaction.on_commit(functools.partial(tasks.wake, tenant_id=tenant.pk, stream=stream))
    return count
