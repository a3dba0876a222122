"""`record()`: the one call every app uses for security-relevant and PHI events."""

from __future__ import annotations

import logging
from typing import Any

from healthmail.observability import request_meta
from healthmail.tenants.context import current_tenant_id, platform_context, tenant_context

from .actors import Actor
from .models import AuditEvent

logger = logging.getLogger("healthmail.audit")


def _target_reference(target: Any) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, tuple):
        return str(target[0]), str(target[1])
    return target._meta.label_lower, str(target.pk)


def record(
    *,
    actor: Actor,
    action: str,
    target: Any = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    reason: str = "",
    details: dict | None = None,
    tenant=None,
) -> AuditEvent:
    """Append an audit event. `target` is a model instance or a (type, id) pair; `details` must
    hold references only. The event joins the caller's transaction: it exists iff the action did."""
    target_type, target_id = _target_reference(target)
    meta = request_meta()
    event = AuditEvent(
        tenant_id=getattr(tenant, "pk", tenant),
        actor_type=actor.kind,
        actor_id=actor.id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        outcome=outcome,
        reason=reason[:500],
        details=details or {},
        request_id=meta.request_id,
        ip_address=meta.client_ip,
    )
    # Platform events (no tenant) are written in platform context: the INSERT's RETURNING must pass
    # the read policy too, and that policy shows tenant-less rows only there.
    if event.tenant_id is not None and current_tenant_id() == event.tenant_id:
        event.save()  # already inside this tenant's context: one INSERT, no extra round trips
    else:
        with platform_context() if event.tenant_id is None else tenant_context(event.tenant_id):
            event.save()
    logger.info("audit", extra={"action": action, "outcome": outcome, "audit_id": event.pk})
    return event
