"""Tenant-admin pages for SMART Backend Services clients: list, register (public keys inline or by
URL, the scopes its tokens may carry), revoke (ends every live token at once)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from healthmail.accounts import selectors, smart
from healthmail.accounts.forms import SmartClientForm
from healthmail.errors import ApplicationError, NotFound

from ..requests import TenantRequest
from .access import actor_of, require_permission

PERMISSION = "tenant.manage_api_keys"


@require_GET
@require_permission(PERMISSION)
def smart_client_list(request: TenantRequest) -> HttpResponse:
    clients = selectors.smart_client_list(tenant=request.tenant)
    return render(request, "accounts/smart_client_list.html", {"clients": clients})


@require_http_methods(["GET", "POST"])
@require_permission(PERMISSION)
def smart_client_register(request: TenantRequest) -> HttpResponse:
    form = SmartClientForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                client = smart.smart_client_register(
                    actor=actor_of(request),
                    tenant=request.tenant,
                    name=data["name"],
                    scopes=data["scopes"],
                    jwks=data["jwks"],
                    jwks_url=data["jwks_url"],
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                messages.success(
                    request,
                    f"“{client.name}” is registered. Its client_id is {client.client_id}: give it to the "
                    "system, which uses it as the iss and sub of its signed assertions.",
                )
                return redirect("accounts:smart_client_list")
    return render(request, "accounts/smart_client_register.html", {"form": form}, status=status)


@require_POST
@require_permission(PERMISSION)
def smart_client_revoke(request: TenantRequest, smart_client_id: uuid.UUID) -> HttpResponse:
    try:
        client = selectors.smart_client_get(tenant=request.tenant, smart_client_id=smart_client_id)
    except NotFound as error:
        raise Http404(error.message) from error
    try:
        ended = smart.smart_client_revoke(actor=actor_of(request), tenant=request.tenant, client=client)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"“{client.name}” is revoked; {ended} live access token(s) ended with it.")
    return redirect("accounts:smart_client_list")
