"""The policy reminder every page shows a member until they acknowledge each current policy."""

from __future__ import annotations

from django.http import HttpRequest

from . import policies


def policies_to_acknowledge(request: HttpRequest) -> dict:
    tenant = getattr(request, "tenant", None)
    membership = getattr(request, "membership", None)
    if tenant is None or membership is None:
        return {}
    # A callable: the query runs only when base.html renders the banner, once per page.
    return {"policies_to_acknowledge": lambda: len(policies.pending_for(tenant=tenant, user=request.user))}
