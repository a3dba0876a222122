"""How the foundation writes to the audit trail without importing the audit app above it.

    from healthmail import audit_trail as audit
    audit.record(actor=actor, action="tenant.create", target=tenant, tenant=tenant)
    audit.record(actor=actor, action="auth.login", outcome=audit.DENIED, reason="bad password")

The audit app registers its writers when it starts (audit/apps.py): `record` is audit.services.record
(the event joins the caller's transaction), `alert_integrity_damaged` raises the critical alert naming
a damaged record. Tenants, accounts, crypto and the API call these; the layer rule (pyproject.toml,
[tool.importlinter]) keeps them from reaching the audit app itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from healthmail.actors import Actor

# The outcomes of an audit event (audit.models.AuditEvent.Outcome).
SUCCESS, DENIED, FAILURE = "success", "denied", "failure"


@dataclass(frozen=True)
class Writers:
    record: Callable[..., Any]
    alert_integrity_damaged: Callable[..., Any]


_writers: list[Writers] = []


def writers_register(writers: Writers) -> None:
    """Called once by the audit app when it starts."""
    _writers[:] = [writers]


def _registered() -> Writers:
    if not _writers:
        raise ImproperlyConfigured("No audit writer: the audit app registers it when it starts.")
    return _writers[0]


def record(
    *,
    actor: Actor,
    action: str,
    target: Any = None,
    outcome: str = SUCCESS,
    reason: str = "",
    details: dict[str, Any] | None = None,
    tenant: Any = None,
    contacts: Iterable[uuid.UUID | str] | None = None,
) -> Any:
    """Append an audit event (see audit.services.record); returns the event."""
    return _registered().record(
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        reason=reason,
        details=details,
        tenant=tenant,
        contacts=contacts,
    )


def alert_integrity_damaged(*, tenant_id: uuid.UUID, record: str, problem: str, found_by: str) -> Any:
    """A critical alert naming a stored record that fails its integrity check (references only)."""
    return _registered().alert_integrity_damaged(
        tenant_id=tenant_id, record=record, problem=problem, found_by=found_by
    )
