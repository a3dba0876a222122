"""Tenant-admin pages: sender domains, the DNS records to publish, and a check of what is published."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from delivery.inbound import health
from delivery.tls.resolver import get_resolver
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.errors import ApplicationError, NotFound
from healthmail.web.actions import service_run

from . import selectors, services

PERMISSION = "tenant.manage_sender_domains"


class SenderDomainForm(forms.Form):
    domain = forms.CharField(
        max_length=253, label="Domain", help_text="The domain in your From addresses, e.g. mail.example.org."
    )


def _domain_or_404(request: TenantRequest, sender_domain_id: uuid.UUID):
    try:
        return selectors.sender_domain_get(tenant=request.tenant, sender_domain_id=sender_domain_id)
    except NotFound as error:
        raise Http404(error.message) from error


@require_permission(PERMISSION)
@require_http_methods(["GET", "POST"])
def sender_domain_list(request: TenantRequest) -> HttpResponse:
    form = SenderDomainForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            sender_domain = services.sender_domain_add(
                tenant=request.tenant, actor=actor_of(request), domain=form.cleaned_data["domain"]
            )
        except ApplicationError as error:
            form.add_error("domain", error.message)
            status = error.status_code
        else:
            return redirect("delivery:sender_domain_detail", sender_domain_id=sender_domain.pk)
    context = {"sender_domains": selectors.sender_domain_list(tenant=request.tenant), "form": form}
    return render(request, "delivery/sender_domain_list.html", context, status=status)


@require_permission(PERMISSION)
def sender_domain_detail(request: TenantRequest, sender_domain_id: uuid.UUID) -> HttpResponse:
    sender_domain = _domain_or_404(request, sender_domain_id)
    keys, records = selectors.sender_domain_records(sender_domain=sender_domain)
    rows = [(record, sender_domain.last_check.get(record.name)) for record in records]
    health = selectors.sender_domain_health(tenant=request.tenant, sender_domain=sender_domain)
    context = {"sender_domain": sender_domain, "keys": keys, "rows": rows, "health": health}
    return render(request, "delivery/sender_domain_detail.html", context)


@require_permission(PERMISSION)
@require_POST
def sender_domain_check(request: TenantRequest, sender_domain_id: uuid.UUID) -> HttpResponse:
    sender_domain = _domain_or_404(request, sender_domain_id)
    checks = services.sender_domain_check(
        tenant=request.tenant, actor=actor_of(request), sender_domain=sender_domain, resolver=get_resolver()
    )
    if sender_domain.status == sender_domain.Status.VERIFIED:
        messages.success(
            request, f"{sender_domain.domain} is verified: mail from it will be signed and sent."
        )
    else:
        missing = sum(1 for c in checks if c.record.required and not c.ok)
        messages.error(
            request, f"{sender_domain.domain} is not verified: {missing} required record(s) not found."
        )
    return redirect("delivery:sender_domain_detail", sender_domain_id=sender_domain.pk)


@require_permission(PERMISSION)
@require_POST
def dkim_key_rotate(request: TenantRequest, sender_domain_id: uuid.UUID) -> HttpResponse:
    sender_domain = _domain_or_404(request, sender_domain_id)
    try:
        key = services.dkim_key_rotate(
            tenant=request.tenant, actor=actor_of(request), sender_domain=sender_domain
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"New key {key.selector}: publish its record, then run the check.")
    return redirect("delivery:sender_domain_detail", sender_domain_id=sender_domain.pk)


@require_permission(PERMISSION)
@require_POST
def dkim_key_retire(request: TenantRequest, sender_domain_id: uuid.UUID, key_id: uuid.UUID) -> HttpResponse:
    sender_domain = _domain_or_404(request, sender_domain_id)
    try:
        key = selectors.dkim_key_get(tenant=request.tenant, sender_domain=sender_domain, key_id=key_id)
    except NotFound as error:
        raise Http404(error.message) from error
    service_run(
        request,
        lambda: services.dkim_key_retire(tenant=request.tenant, actor=actor_of(request), key=key),
        f"Key {key.selector} retired: you may remove its DNS record.",
    )
    return redirect("delivery:sender_domain_detail", sender_domain_id=sender_domain.pk)


@require_permission(PERMISSION)
@require_POST
def domain_pause_lift(
    request: TenantRequest, sender_domain_id: uuid.UUID, pause_id: uuid.UUID
) -> HttpResponse:
    sender_domain = _domain_or_404(request, sender_domain_id)
    try:
        pause = health.domain_pause_get(tenant=request.tenant, pause_id=pause_id)
    except NotFound as error:
        raise Http404(error.message) from error
    service_run(
        request,
        lambda: health.domain_pause_lift(tenant=request.tenant, actor=actor_of(request), pause=pause),
        f"Mail to {pause.receiving_domain} goes out again.",
    )
    return redirect("delivery:sender_domain_detail", sender_domain_id=sender_domain.pk)
