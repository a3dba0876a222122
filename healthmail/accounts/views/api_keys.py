"""Tenant-admin pages for API keys: list, create (the key is shown once), revoke."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from healthmail.accounts import api_keys, selectors
from healthmail.accounts.forms import ApiKeyForm
from healthmail.accounts.requests import TenantRequest
from healthmail.errors import ApplicationError, NotFound

from .access import actor_of, no_store, require_permission

PERMISSION = "tenant.manage_api_keys"


@require_permission(PERMISSION)
def api_key_list(request: TenantRequest) -> HttpResponse:
    keys = selectors.api_key_list(tenant=request.tenant)
    return render(request, "accounts/api_key_list.html", {"api_keys": keys})


@require_permission(PERMISSION)
@require_http_methods(["GET", "POST"])
def api_key_create(request: TenantRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            issued = api_keys.api_key_create(
                actor=actor_of(request),
                tenant=request.tenant,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.expires_at(),
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
            status = error.status_code
        else:
            # Rendered, not redirected: the plaintext exists only in this response.
            context = {"api_key": issued.api_key, "plaintext": issued.plaintext}
            return no_store(render(request, "accounts/api_key_created.html", context, status=201))
    return render(request, "accounts/api_key_create.html", {"form": form}, status=status)


@require_permission(PERMISSION)
@require_POST
def api_key_revoke(request: TenantRequest, api_key_id: uuid.UUID) -> HttpResponse:
    try:
        api_key = selectors.api_key_get(tenant=request.tenant, api_key_id=api_key_id)
    except NotFound as error:
        raise Http404(error.message) from error
    try:
        api_keys.api_key_revoke(actor=actor_of(request), tenant=request.tenant, api_key=api_key)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The key “{api_key.name}” is revoked; requests using it are refused.")
    return redirect("accounts:api_key_list")
