"""`manage.py check --deploy` rules that need the database: sender domains without an SPF include."""

from __future__ import annotations

from django.core import checks
from django.db import DatabaseError

from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import SenderDomain
from .sender_domains.records import spf_include


def _any_sender_domain() -> bool:
    # Sender domains are tenant rows under row-level security: look tenant by tenant.
    for tenant in Tenant.objects.all():
        with tenant_context(tenant):
            if SenderDomain.objects.filter(tenant=tenant).exists():
                return True
    return False


@checks.register(checks.Tags.security, deploy=True)
def spf_include_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if spf_include():
        return []
    try:
        found = _any_sender_domain()
    except DatabaseError as error:
        return [
            checks.Warning(
                f"DELIVERY_SPF_INCLUDE is unset and sender domains could not be counted "
                f"({error.__class__.__name__}).",
                hint="Set DELIVERY_SPF_INCLUDE before any tenant adds a sender domain.",
                id="delivery.W001",
            )
        ]
    if not found:
        return []
    return [
        checks.Error(
            "DELIVERY_SPF_INCLUDE is unset while sender domains exist: their tenants cannot publish a "
            "working SPF record, so no sender domain can verify.",
            hint="Set DELIVERY_SPF_INCLUDE to the domain whose SPF record lists the sending hosts.",
            id="delivery.E001",
        )
    ]
