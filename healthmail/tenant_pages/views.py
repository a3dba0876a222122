"""Platform administration (tenants, BAAs) and the organization settings page. Thin: parse,
authorize, call one service or selector, render. Platform admins see counts, never PHI."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import access_denied_record
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants import services
from healthmail.tenants.forms import (
    BaaForm,
    BaaTerminateForm,
    TenantCreateForm,
    TenantSettingsForm,
    TenantStatusForm,
)
from healthmail.tenants.models import BusinessAssociateAgreement, Tenant

from . import selectors


def _require(request: TenantRequest, *permissions: str) -> None:
    """403 unless the role holds one of the permissions; the refusal is audited."""
    if any(role_can(request.role, permission) for permission in permissions):
        return
    view_name = request.resolver_match.view_name if request.resolver_match else ""
    access_denied_record(request, reason=" or ".join(permissions), view_name=view_name)
    raise PermissionDenied


def _actor(request: TenantRequest) -> Actor:
    return Actor.for_user(request.user)


def _tenant_or_404(tenant_id: uuid.UUID) -> Tenant:
    return get_object_or_404(Tenant, pk=tenant_id)


def _baa_or_404(tenant: Tenant, baa_id: uuid.UUID) -> BusinessAssociateAgreement:
    baa = selectors.baa_get(tenant, baa_id)
    if baa is None:
        raise Http404
    return baa


# --- Platform administration ------------------------------------------------------------------------


def tenant_list(request: TenantRequest) -> HttpResponse:
    _require(request, "platform.manage_tenants")
    return render(request, "tenants/tenant_list.html", {"summaries": selectors.tenant_summaries()})


@require_http_methods(["GET", "POST"])
def tenant_create(request: TenantRequest) -> HttpResponse:
    _require(request, "platform.manage_tenants")
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            tenant = services.tenant_create(
                actor=_actor(request),
                name=data["name"],
                slug=data["slug"],
                postal_address=data["postal_address"],
                timezone_name=data["timezone"],
            )
        except ApplicationError as error:
            form.add_error("slug" if error.code == "slug_taken" else None, error.message)
        else:
            messages.success(request, f"{tenant.name} was created. Record its BAA before any PHI can flow.")
            return redirect("tenants:tenant_detail", tenant_id=tenant.pk)
    return render(request, "tenants/tenant_create.html", {"form": form})


def tenant_detail(request: TenantRequest, tenant_id: uuid.UUID) -> HttpResponse:
    _require(request, "platform.manage_tenants")
    tenant = _tenant_or_404(tenant_id)
    return render(request, "tenants/tenant_detail.html", _detail_context(tenant, TenantStatusForm()))


def _detail_context(tenant: Tenant, status_form: TenantStatusForm) -> dict[str, object]:
    return {
        "tenant": tenant,
        "summary": selectors.tenant_summary(tenant),
        "baas": selectors.baa_history(tenant),
        "status_form": status_form,
    }


@require_POST
def tenant_status(request: TenantRequest, tenant_id: uuid.UUID) -> HttpResponse:
    _require(request, "platform.manage_tenants")
    tenant = _tenant_or_404(tenant_id)
    form = TenantStatusForm(request.POST)
    status = request.POST.get("status", "")
    if form.is_valid():
        try:
            services.tenant_set_status(
                actor=_actor(request), tenant=tenant, status=status, reason=form.cleaned_data["reason"]
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            verb = "suspended" if tenant.status == Tenant.Status.SUSPENDED else "reactivated"
            messages.success(request, f"{tenant.name} was {verb}.")
            return redirect("tenants:tenant_detail", tenant_id=tenant.pk)
    return render(request, "tenants/tenant_detail.html", _detail_context(tenant, form), status=400)


@require_http_methods(["GET", "POST"])
def baa_create(request: TenantRequest, tenant_id: uuid.UUID) -> HttpResponse:
    _require(request, "platform.manage_baas")
    tenant = _tenant_or_404(tenant_id)
    renewing = None
    if request.GET.get("renew"):
        try:
            renewing = selectors.baa_get(tenant, uuid.UUID(request.GET["renew"]))
        except ValueError:
            renewing = None
    form = BaaForm(request.POST or None, request.FILES or None, initial=_renewal_initial(tenant, renewing))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.baa_record(
                actor=_actor(request),
                tenant=tenant,
                counterparty=data["counterparty"],
                signed_on=data["signed_on"],
                effective_on=data["effective_on"],
                expires_on=data["expires_on"],
                signatory_name=data["signatory_name"],
                signatory_title=data["signatory_title"],
                document_sha256=data["document_sha256"],
                services=data["services"],
                breach_notification_days=data["breach_notification_days"],
                subcontractors=data["subcontractors"],
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"The BAA for {tenant.name} was recorded.")
            return redirect("tenants:tenant_detail", tenant_id=tenant.pk)
    return render(request, "tenants/baa_form.html", {"tenant": tenant, "form": form, "renewing": renewing})


def _renewal_initial(tenant: Tenant, renewing: BusinessAssociateAgreement | None) -> dict[str, object]:
    if renewing is None:
        return {"counterparty": tenant.name, "breach_notification_days": 60}
    subcontractors = selectors.baa_subcontractor_lines(tenant, renewing)
    return {
        "counterparty": renewing.counterparty,
        "signatory_name": renewing.signatory_name,
        "signatory_title": renewing.signatory_title,
        "services": renewing.services,
        "breach_notification_days": renewing.breach_notification_days,
        "subcontractors": subcontractors,
    }


@require_http_methods(["GET", "POST"])
def baa_terminate(request: TenantRequest, tenant_id: uuid.UUID, baa_id: uuid.UUID) -> HttpResponse:
    _require(request, "platform.manage_baas")
    tenant = _tenant_or_404(tenant_id)
    baa = _baa_or_404(tenant, baa_id)
    form = BaaTerminateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.baa_terminate(
                actor=_actor(request),
                tenant=tenant,
                baa=baa,
                on=form.cleaned_data["terminated_on"],
                reason=form.cleaned_data["reason"],
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"The BAA with {baa.counterparty} was terminated.")
            return redirect("tenants:tenant_detail", tenant_id=tenant.pk)
    context = {"tenant": tenant, "baa": baa, "form": form, "service_labels": selectors.service_labels(baa)}
    return render(request, "tenants/baa_terminate.html", context)


# --- Organization settings (tenant admins) -------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def tenant_settings(request: TenantRequest) -> HttpResponse:
    """Tenant admins edit; compliance officers may look (BAA status). PHI gating is shown read-only."""
    _require(request, "tenant.manage_settings", "tenant.view_baa")
    tenant = request.tenant
    may_edit = role_can(request.role, "tenant.manage_settings")
    initial = {
        "postal_address": tenant.postal_address,
        "timezone": tenant.timezone,
        "idle_timeout_minutes": tenant.idle_timeout_minutes,
    }
    form = TenantSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST":
        _require(request, "tenant.manage_settings")
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.tenant_update_settings(
                    actor=_actor(request),
                    tenant=tenant,
                    postal_address=data["postal_address"],
                    timezone_name=data["timezone"],
                    idle_timeout_minutes=data["idle_timeout_minutes"],
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, "Settings saved.")
                return redirect(reverse("tenants:settings"))
    context = {
        "tenant": tenant,
        "form": form,
        "may_edit": may_edit,
        "statuses": selectors.tenant_service_statuses(tenant),
        "baa": services.active_baa(tenant=tenant) if tenant.is_active else None,
    }
    return render(request, "tenants/settings.html", context, status=400 if form.errors else 200)
