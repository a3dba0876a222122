"""The tenant context: which tenant's rows PostgreSQL lets the current transaction see.

Row-level security policies compare `tenant_id` with the transaction-local setting
`app.tenant_id`. It is set with `set_config(..., is_local => true)` so it can never outlive the
transaction and leak to the next user of a pooled connection. Outside a context nothing is visible.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

_current_tenant: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar(
    "current_tenant", default=None
)


def current_tenant_id() -> uuid.UUID | None:
    return _current_tenant.get()


def context_tenant_id() -> uuid.UUID:
    """The tenant of the open context, for code that only runs inside one (a tenant task's body)."""
    tenant_id = _current_tenant.get()
    if tenant_id is None:
        raise RuntimeError("No tenant context is open.")
    return tenant_id


def _set_local(name: str, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def _replace_local(name: str, value: str) -> str:
    """Set the setting and return the value it held, in one round trip: the subquery (kept apart by
    OFFSET 0) yields its row before the outer select list, and so set_config, is evaluated."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT previous.value, set_config(%s, %s, true)"
            " FROM (SELECT current_setting(%s, true) AS value OFFSET 0) AS previous",
            [name, value, name],
        )
        return cursor.fetchone()[0] or ""


@contextmanager
def db_setting(name: str, value: str) -> Iterator[None]:
    """Set a transaction-local setting for the block, restoring the outer value afterwards."""
    if not connection.in_atomic_block:
        # A transaction of our own: the setting ends with it, nothing to read or restore.
        with transaction.atomic():
            _set_local(name, value)
            yield
        return
    with transaction.atomic():
        previous = _replace_local(name, value)
        yield
        # On an exception, or when the block was marked for rollback (an API 500), the savepoint
        # rollback restores the outer value by itself; a query here would be refused.
        if not transaction.get_rollback():
            _set_local(name, previous)


# Which connection the innermost open tenant_context set `app.tenant_id` on (see tenant_context).
_tenant_set_on: contextvars.ContextVar[object | None] = contextvars.ContextVar("tenant_set_on", default=None)


@contextmanager
def tenant_context(tenant_or_id: object) -> Iterator[uuid.UUID]:
    """Run the block in one transaction scoped to a tenant (a Tenant or its id)."""
    tenant_id = uuid.UUID(str(getattr(tenant_or_id, "pk", tenant_or_id)))
    # Inside an open context for the same tenant, on the same connection (a thread's own: a context
    # copied into another thread does not match), the setting already holds this tenant: that context's
    # transaction is still open, and only a savepoint taken after the setting could have been rolled
    # back. Services re-enter the context their view opened on every call; this spares three queries
    # each. The savepoint stays, so an exception leaves the outer transaction as before.
    if _current_tenant.get() == tenant_id and _tenant_set_on.get() is connections[DEFAULT_DB_ALIAS]:
        with transaction.atomic():
            yield tenant_id
        return
    token = _current_tenant.set(tenant_id)
    set_on = _tenant_set_on.set(connections[DEFAULT_DB_ALIAS])
    try:
        with db_setting("app.tenant_id", str(tenant_id)):
            yield tenant_id
    finally:
        _tenant_set_on.reset(set_on)
        _current_tenant.reset(token)


@contextmanager
def user_context(user_id: object) -> Iterator[None]:
    """Lets the block read the user's own memberships across tenants (the tenant switcher)."""
    with db_setting("app.user_id", str(user_id)):
        yield


@contextmanager
def platform_context() -> Iterator[None]:
    """Lets a platform admin read tenant-less audit events. Grants no tenant rows."""
    with db_setting("app.platform", "on"):
        yield
