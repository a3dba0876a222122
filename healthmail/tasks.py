"""How tasks reach tenant data: ids in, tenant context around the body, enqueue after commit.

    @tenant_task()
    def contact_reindex(contact_id: str) -> None: ...        # body runs inside tenant_context

    enqueue(contact_reindex, tenant=tenant, contact_id=str(contact.pk))

A task started without a tenant id cannot see any tenant row (row-level security fails closed).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from typing import Any

from django.db import transaction

from healthmail.celery import app
from healthmail.tenants.context import tenant_context


def tenant_task(**task_options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Declare a Celery task whose body runs in the context of the tenant named by `tenant_id`."""

    def decorator(function: Callable[..., Any]) -> Any:
        @app.task(name=f"{function.__module__}.{function.__name__}", **task_options)  # type: ignore[untyped-decorator]
        @functools.wraps(function)
        def task(tenant_id: str, **kwargs: Any) -> Any:
            with tenant_context(tenant_id):
                return function(**kwargs)

        return task

    return decorator


def enqueue(
    task: Any, *, tenant: object, eta: datetime.datetime | None = None, robust: bool = False, **kwargs: Any
) -> None:
    """Send the task once the surrounding transaction commits (never before its rows exist), at `eta`
    if given. `robust`: a broker that cannot be reached is logged, not raised, for work a sweeper
    finds anyway (the committed answer stands)."""
    tenant_id = str(getattr(tenant, "pk", tenant))
    options = {"eta": eta} if eta is not None else {}
    transaction.on_commit(
        lambda: task.apply_async(kwargs={"tenant_id": tenant_id, **kwargs}, **options), robust=robust
    )
