"""`record()`: the one call every app uses for security-relevant and PHI events."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import connection
from psycopg.types.json import Jsonb

from healthmail.actors import Actor
from healthmail.observability import request_meta
from healthmail.tenants.context import current_tenant_id, platform_context, tenant_context

from .models import AuditEvent


def _target_reference(target: Any) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, tuple):
        return str(target[0]), str(target[1])
    return target._meta.label_lower, str(target.pk)


CONTACT_MODEL = "contacts.contact"
_BY_VALUE = operator.attrgetter("int")


def _contact_ids(target_type: str, target_id: str, contacts: Iterable | None) -> list[uuid.UUID]:
    """The contacts an event concerns: those named, plus its target when the target is a contact.
    Sorted and unique, so the chain hashes the same list however the caller ordered it."""
    # Most callers pass UUIDs already (a journey advance names a thousand): only text is parsed.
    found = {c if isinstance(c, uuid.UUID) else uuid.UUID(str(c)) for c in contacts or () if c is not None}
    if target_type == CONTACT_MODEL and target_id:
        try:
            found.add(uuid.UUID(target_id))
        except ValueError:
            pass  # not a contact id: nothing to index (the target is still recorded as given)
    return sorted(found, key=_BY_VALUE)  # the order UUID.__lt__ gives, without a Python call per comparison


_INSERT = (
    "INSERT INTO audit_auditevent (tenant_id, occurred_at, actor_type, actor_id, action, target_type,"
    " target_id, outcome, reason, details, request_id, ip_address, contact_ids, hash)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::uuid[], '') RETURNING id"
)


def _insert(event: AuditEvent) -> None:
    """A plain INSERT: the ORM's save() costs more than the database on this hot path (every
    request writes at least one event)."""
    # psycopg adapts Jsonb itself; Django's stubs list only plain values as parameters.
    parameters: list[Any] = [
        event.tenant_id,
        event.occurred_at,
        event.actor_type,
        event.actor_id,
        event.action,
        event.target_type,
        event.target_id,
        event.outcome,
        event.reason,
        Jsonb(event.details),
        event.request_id,
        event.ip_address,
        # One array literal: the client-side binding quotes a list element by element in
        # Python (a journey advance names a thousand contacts), a string in one pass.
        "{" + ",".join(map(str, event.contact_ids)) + "}",
    ]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, parameters)
        event.pk = cursor.fetchone()[0]
    event._state.adding = False


def record(
    *,
    actor: Actor,
    action: str,
    target: Any = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    reason: str = "",
    details: dict | None = None,
    tenant=None,
    contacts: Iterable[uuid.UUID | str] | None = None,
) -> AuditEvent:
    """Append an audit event. `target` is a model instance or a (type, id) pair; `details` must
    hold references only; `contacts` are the ids of every contact the event concerns (a contact
    target is added by itself). The event joins the caller's transaction: it exists iff the action did."""
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
        contact_ids=_contact_ids(target_type, target_id, contacts),
        request_id=meta.request_id,
        ip_address=meta.client_ip,
    )
    # Platform events (no tenant) are written in platform context: the INSERT's RETURNING must pass
    # the read policy too, and that policy shows tenant-less rows only there.
    if event.tenant_id is not None and current_tenant_id() == event.tenant_id:
        _insert(event)  # already inside this tenant's context: one INSERT, no extra round trips
    else:
        with platform_context() if event.tenant_id is None else tenant_context(event.tenant_id):
            _insert(event)
    return event
