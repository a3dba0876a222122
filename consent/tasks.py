"""Hourly consent upkeep: expire authorizations whose time is up, send renewal reminders. Beat runs the
fan-out tasks; each tenant's work runs in its own task, inside its tenant context."""

from __future__ import annotations

from healthmail.celery import app
from healthmail.tasks import tenant_task
from healthmail.tenants.context import context_tenant_id
from healthmail.tenants.models import Tenant

from . import authorizations


@tenant_task(acks_late=True)
def authorization_expire_tenant() -> int:
    return authorizations.authorization_expire_due(tenant=Tenant.objects.get(pk=context_tenant_id()))


@tenant_task(acks_late=True)
def authorization_remind_tenant() -> int:
    return authorizations.authorization_reminders_send(tenant=Tenant.objects.get(pk=context_tenant_id()))


@app.task(name="consent.tasks.authorization_upkeep_all", acks_late=True)
def authorization_upkeep_all() -> int:
    """Beat entry point: one expiry task and one reminder task per active tenant."""
    tenant_ids = list(Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("pk", flat=True))
    for tenant_id in tenant_ids:
        # Independent: the gate refuses past expires_at already, and reminders skip ended ones.
        authorization_expire_tenant.apply_async(kwargs={"tenant_id": str(tenant_id)})
        authorization_remind_tenant.apply_async(kwargs={"tenant_id": str(tenant_id)})
    return len(tenant_ids)
