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


# The publish of a wake-up that a sweeper repeats anyway (robust on-commit sends): one immediate retry on
# a fresh connection (a pooled one may be stale after a broker restart), no sleeping. Celery's default
# (3 retries, 0 + 0.2 + 0.4 s apart) held each accepted API request ~0.6 s longer while Redis was down,
# for a wake-up that could not be sent anyway; the committed rows are what the sweepers wake.
WAKE_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


def enqueue(
    task: Any, *, tenant: object, eta: datetime.datetime | None = None, robust: bool = False, **kwargs: Any
) -> None:
    """Send the task once the surrounding transaction commits (never before its rows exist), at `eta`
    if given. `robust`: a broker that cannot be reached is logged, not raised, for work a sweeper
    finds anyway (the committed answer stands)."""
    tenant_id = str(getattr(tenant, "pk", tenant))
    options: dict[str, Any] = {"eta": eta} if eta is not None else {}
    if robust:
        options["retry_policy"] = WAKE_RETRY_POLICY
    transaction.on_commit(
        lambda: task.apply_async(kwargs={"tenant_id": tenant_id, **kwargs}, **options), robust=robust
    )
