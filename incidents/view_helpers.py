"""What the incident views share: the tenant's object or a 404, who is acting, and the shape of a POST
that runs one service, tells the user how it went and returns to its page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404

from healthmail.accounts.requests import TenantRequest
from healthmail.tenants.context import tenant_context
from healthmail.web.actions import service_run

from .models import AccessRequest, Incident


def incident_or_404(request: TenantRequest, incident_id: object) -> Incident:
    with tenant_context(request.tenant):
        return get_object_or_404(
            Incident.objects.select_related("baa"), tenant=request.tenant, pk=incident_id
        )


def access_request_or_404(request: TenantRequest, request_id: object) -> AccessRequest:
    with tenant_context(request.tenant):
        return get_object_or_404(AccessRequest, tenant=request.tenant, pk=request_id)


def who(request: TenantRequest) -> dict[str, Any]:
    """The keyword arguments every incidents service takes for the person acting."""
    return {"tenant": request.tenant, "user": request.user, "role": request.role}


def form_refusals(form: forms.Form) -> str:
    """The form's errors as one line for a flash message: `Label: message; Label: message`."""
    return "; ".join(
        f"{form.fields[n].label or n}: {' '.join(str(m) for m in e)}" for n, e in form.errors.items()
    )


def form_action_run(
    request: TenantRequest,
    form: forms.Form,
    action: Callable[[dict], Any],
    success: str,
    *,
    refused: str,
    reasons: bool = True,
) -> None:
    """Run one service with the form's cleaned data; an invalid form flashes `refused` (followed by
    the form's errors when `reasons`) and runs nothing."""
    if not form.is_valid():
        messages.error(request, f"{refused} {form_refusals(form)}" if reasons else refused)
        return
    service_run(request, lambda: action(form.cleaned_data), success)
