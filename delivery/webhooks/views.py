"""Tenant-admin pages: webhook endpoints (the secret is shown once), their delivery log, a test event."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of, no_store, require_permission
from healthmail.errors import ApplicationError, NotFound

from ..models import WebhookDelivery, WebhookEndpoint
from . import services

PERMISSION = "tenant.manage_api_keys"  # integrations: API keys and webhooks go together


class EndpointForm(forms.Form):
    url = forms.URLField(
        label="Endpoint URL",
        max_length=2000,
        assume_scheme="https",
        help_text="HTTPS, on a public address. Events are POSTed here.",
    )
    description = forms.CharField(label="Description", max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        label="Events",
        choices=[(k, v) for k, v in services.EVENT_TYPES.items() if k != "webhook.test"],
        widget=forms.CheckboxSelectMultiple,
    )


def _endpoint_or_404(request: TenantRequest, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    try:
        return services.endpoint_get(tenant=request.tenant, endpoint_id=endpoint_id)
    except NotFound as error:
        raise Http404(error.message) from error


@require_permission(PERMISSION)
@require_http_methods(["GET", "POST"])
def endpoint_list(request: TenantRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = services.endpoint_create(
                tenant=request.tenant,
                actor=actor_of(request),
                url=data["url"],
                event_types=data["event_types"],
                description=data["description"],
            )
        except ApplicationError as error:
            form.add_error("url", error.message)
            status = error.status_code
        else:
            context = {"endpoint": created.endpoint, "secret": created.secret}
            return no_store(render(request, "delivery/webhooks/created.html", context))
    endpoints = WebhookEndpoint.objects.for_tenant(request.tenant)
    return render(
        request, "delivery/webhooks/list.html", {"endpoints": endpoints, "form": form}, status=status
    )


@require_permission(PERMISSION)
def endpoint_detail(request: TenantRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint_or_404(request, endpoint_id)
    deliveries = WebhookDelivery.objects.for_tenant(request.tenant).filter(endpoint=endpoint)[:100]
    return render(request, "delivery/webhooks/detail.html", {"endpoint": endpoint, "deliveries": deliveries})


@require_permission(PERMISSION)
@require_POST
def endpoint_action(request: TenantRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint_or_404(request, endpoint_id)
    action = request.POST.get("action", "")
    actor = actor_of(request)
    if action == "delete":
        services.endpoint_delete(tenant=request.tenant, actor=actor, endpoint=endpoint)
        messages.success(request, "The endpoint is deleted.")
        return redirect("webhooks:list")
    if action in ("enable", "disable"):
        services.endpoint_update(
            tenant=request.tenant, actor=actor, endpoint=endpoint, active=action == "enable"
        )
        messages.success(request, f"The endpoint is {'enabled' if endpoint.active else 'disabled'}.")
    elif action == "test":
        services.webhook_test_send(tenant=request.tenant, actor=actor, endpoint=endpoint)
        messages.success(request, "A test event is queued; it appears in the log below.")
    return redirect("webhooks:detail", endpoint_id=endpoint.pk)
