"""Compliance officers' audit pages: search, detail, chain status, export, alerts, break-glass."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from healthmail import labels
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import access_denied, actor_of, require_permission
from healthmail.crypto import signing
from healthmail.errors import ApplicationError
from healthmail.sysmail.selectors import deliveries_for

from . import alerts, break_glass, chain, exports, patients, policy, services
from .forms import AuditPolicyForm, BreakGlassForm, EventFilterForm, ExportForm, PatientLookupForm
from .models import Alert, AuditEvent, BreakGlassGrant
from .selectors import EventFilter, event_search, latest_verification

PAGE_SIZE = 50


def require_audit_reviewer(view: Callable) -> Callable:
    """Compliance officers, plus the roles the tenant named as audit reviewers."""

    @wraps(view)
    def guarded(request: TenantRequest, *args, **kwargs) -> HttpResponse:
        if not policy.may_review_audit(tenant=request.tenant, role=request.role):
            return access_denied(
                request,
                reason="audit review",
                view_name=view.__name__,
                message="Your role does not review this organization's audit trail.",
            )
        return view(request, *args, **kwargs)

    return guarded


@require_audit_reviewer
def event_list(request: TenantRequest) -> HttpResponse:
    form = EventFilterForm(request.GET or None)
    valid = not form.is_bound or form.is_valid()
    filters = form.filters() if form.is_bound and valid else EventFilter()
    events = event_search(tenant=request.tenant, filters=filters)
    if not valid:
        events = events.none()  # a filter that cannot be read shows nothing, never everything
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    newest = events.values_list("id", flat=True).first()
    context = {
        "form": form,
        "page": page,
        "verification": latest_verification(tenant=request.tenant),
        # Built from the filters applied to these rows (not the page's first URL), and bounded by
        # the newest event shown: the export is exactly "these events".
        "export_form": ExportForm(initial={**filters.__dict__, "through_id": newest}) if valid else None,
        "matching": page.paginator.count,
        "lookup_form": PatientLookupForm(),
        "open_alerts": Alert.objects.filter(tenant=request.tenant, acknowledged_at__isnull=True).count(),
        "query": _filter_query(filters),
        # Offered as the action filter is typed: each code with the label the rows show.
        "action_choices": sorted(
            ((code, labels.label("audit_action", code)) for code in labels.codes("audit_action")),
            key=lambda choice: choice[1],
        ),
    }
    partial = request.htmx and not request.htmx.history_restore_request
    response = render(request, "audit/_event_rows.html" if partial else "audit/event_list.html", context)
    # The same URL answers a whole page or the rows: caches (and the back button) must tell them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


def _filter_query(filters: EventFilter) -> str:
    fields = EventFilterForm.base_fields
    return urlencode({k: v for k, v in filters.__dict__.items() if k in fields and v})


@require_POST
@require_audit_reviewer
def patient_lookup(request: TenantRequest) -> HttpResponse:
    """Exact identifier in the POST body (never in a URL) → the audit trail of that contact."""
    form = PatientLookupForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter an exact email, phone, MRN or external id.")
        return redirect("audit:event_list")
    try:
        contact_id = patients.patient_find(
            tenant=request.tenant,
            actor=actor_of(request),
            identifier=form.cleaned_data["identifier"],
            purpose="audit search",
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("audit:event_list")
    return redirect(f"{reverse('audit:event_list')}?{urlencode({'contact': contact_id})}")


@require_audit_reviewer
def event_detail(request: TenantRequest, event_id: int) -> HttpResponse:
    event = get_object_or_404(AuditEvent, tenant=request.tenant, pk=event_id)
    return render(request, "audit/event_detail.html", {"event": event})


@require_POST
@require_audit_reviewer
def chain_verify(request: TenantRequest) -> HttpResponse:
    chain.seal_pending(request.tenant.pk)
    report = chain.verification_record(request.tenant.pk, found_by="verification requested by an officer")
    if report.ok:
        messages.success(request, f"The audit trail verifies: {report.rows} events, chain intact.")
    else:
        messages.error(request, f"The audit trail is broken at {report.problems[0]}")
    return _back_to_list(request)


def _back_to_list(request: TenantRequest) -> HttpResponse:
    """Back to the list with the filters the officer had (only our own query string is kept)."""
    incoming = QueryDict(request.POST.get("query", ""))
    query = urlencode({k: v for k, v in incoming.items() if k in EventFilterForm.base_fields and v})
    return redirect(f"{reverse('audit:event_list')}?{query}" if query else reverse("audit:event_list"))


@require_POST
@require_audit_reviewer
def event_export(request: TenantRequest) -> HttpResponse:
    form = ExportForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "The export filters are invalid: "
            + "; ".join(str(e) for errors in form.errors.values() for e in errors),
        )
        return redirect("audit:event_list")
    try:
        export = exports.audit_export(
            actor=actor_of(request),
            tenant=request.tenant,
            filters=form.filters(),
            fmt=form.cleaned_data["format"],
        )
    except exports.ExportError as error:
        messages.error(request, str(error))
        return redirect("audit:event_list")
    response = HttpResponse(export.content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_audit_reviewer
def alert_list(request: TenantRequest) -> HttpResponse:
    items = list(Alert.objects.filter(tenant=request.tenant)[:200])
    deliveries = deliveries_for(
        tenant=request.tenant, topic=alerts.MAIL_TOPIC, source_ids=[a.pk for a in items]
    )
    rows = [(alert, deliveries.get(str(alert.pk), [])) for alert in items]
    return render(request, "audit/alert_list.html", {"rows": rows})


@require_POST
@require_audit_reviewer
def alert_acknowledge(request: TenantRequest, alert_id: uuid.UUID) -> HttpResponse:
    alert = get_object_or_404(Alert, tenant=request.tenant, pk=alert_id)
    alerts.alert_acknowledge(tenant=request.tenant, alert=alert, user=request.user)
    messages.success(request, "Alert acknowledged.")
    return redirect("audit:alert_list")


@require_permission("break_glass.open")
def break_glass_list(request: TenantRequest) -> HttpResponse:
    targets = break_glass.break_glass_targets()
    form = BreakGlassForm(request.POST or None, targets=targets)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            if patient := data.pop("patient"):
                data["target_id"] = str(
                    patients.patient_find(
                        tenant=request.tenant,
                        actor=actor_of(request),
                        identifier=patient,
                        purpose="break-glass",
                    )
                )
            grant = break_glass.break_glass_open(
                user=request.user, role=request.role, tenant=request.tenant, **data
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.warning(
                request,
                f"Break-glass access open until {grant.expires_at:%H:%M} UTC. "
                "Compliance officers have been alerted.",
            )
            return redirect("audit:break_glass_list")
    grants = BreakGlassGrant.objects.filter(tenant=request.tenant)
    if not role_can(request.role, "audit.view"):
        grants = grants.filter(user=request.user)  # reviewers see their own grants only
    status = 400 if form.errors else 200
    return render(request, "audit/break_glass.html", {"form": form, "grants": grants[:100]}, status=status)


@require_POST
@require_permission("break_glass.open")
def break_glass_close(request: TenantRequest, grant_id: uuid.UUID) -> HttpResponse:
    grant = get_object_or_404(BreakGlassGrant, tenant=request.tenant, pk=grant_id)
    if grant.user_id != request.user.pk:
        raise Http404
    break_glass.break_glass_close(user=request.user, tenant=request.tenant, grant=grant)
    messages.success(request, "Break-glass access closed.")
    return redirect("audit:break_glass_list")


@require_permission("audit.view")
def audit_settings(request: TenantRequest) -> HttpResponse:
    current = policy.audit_policy(tenant=request.tenant)
    form = AuditPolicyForm(
        request.POST or None,
        initial={"reviewer_roles": current.reviewer_roles, "retention_years": current.retention_years},
    )
    if request.method == "POST" and form.is_valid():
        try:
            policy.audit_policy_update(actor=actor_of(request), tenant=request.tenant, **form.cleaned_data)
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Audit review settings saved.")
            return redirect("audit:settings")
    return render(request, "audit/settings.html", {"form": form}, status=400 if form.errors else 200)


@require_permission("audit.view")
def signing_keys(request: TenantRequest) -> HttpResponse:
    """The organization's published public keys (what outside auditors verify with); rotating one
    retires it for signing and keeps it for verifying."""
    if request.method == "POST":
        key = signing.signing_key_rotate(request.tenant)
        services.record(
            actor=actor_of(request),
            action="crypto.signing_key_rotate",
            tenant=request.tenant,
            details={"key_id": key.key_id},
        )
        messages.success(request, f"New signing key {key.key_id}; the previous one still verifies.")
        return redirect("audit:signing_keys")
    signing.signing_key_current(request.tenant)
    keys = [(key, signing.public_key_pem(key)) for key in signing.signing_keys(request.tenant)]
    return render(request, "audit/signing_keys.html", {"keys": keys})


@require_permission("audit.view")
def signing_key_pem(request: TenantRequest, fingerprint: str) -> HttpResponse:
    key = next((k for k in signing.signing_keys(request.tenant) if k.fingerprint == fingerprint), None)
    if key is None:
        raise Http404
    response = HttpResponse(signing.public_key_pem(key), content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="healthmail-{key.fingerprint}.pem"'
    return response
