"""Run the system-mail outbox in the test's own process, as the Celery task and the sweep would."""

from __future__ import annotations

from healthmail.sysmail import services
from healthmail.tenants.models import Tenant


def deliver_system_mail(*tenants) -> list[str | None]:
    """One attempt at every due row (of the given tenants, default all); returns the new states."""
    tenant_ids = [t.pk for t in tenants] or list(Tenant.objects.values_list("pk", flat=True))
    states = []
    for tenant_id in tenant_ids:
        for mail_id in services.system_mail_sweep_tenant(tenant_id=tenant_id):
            states.append(services.system_mail_send(tenant_id=tenant_id, mail_id=mail_id))
    return states
