"""Celery side of system mail: ids in (never an address or a body), one attempt per task."""

from __future__ import annotations

import uuid

from healthmail.celery import app

from . import services


# Not a tenant_task: the claim must commit before the SMTP conversation, and the outcome after it,
# so the service opens its own tenant transactions around each step.
@app.task(
    name="healthmail.sysmail.tasks.transactional_system_mail_send",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=90,
    time_limit=120,
)  # type: ignore[untyped-decorator]  # Celery has no types
def transactional_system_mail_send(tenant_id: str, mail_id: str) -> str | None:
    return services.system_mail_send(tenant_id=uuid.UUID(tenant_id), mail_id=uuid.UUID(mail_id))


@app.task(
    name="healthmail.sysmail.tasks.system_mail_sweep", ignore_result=True, soft_time_limit=50, time_limit=60
)  # type: ignore[untyped-decorator]  # Celery has no types
def system_mail_sweep() -> int:
    """Retries due, tasks the broker lost, claims of dead workers, rows past their lifetime."""
    return services.system_mail_sweep()
