"""Dashboard, policies with history, exceptions, archive search and retrieval, evidence exports."""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.errors import ApplicationError, NotFound
from healthmail.tenants.context import tenant_context

from .. import archive, exports, policies, selectors, services
from ..forms import ExceptionForm, ExportForm, PolicyForm, ReasonForm, SearchForm
from ..models import Action, RetentionException, RetentionPolicy
from ..registry import category_get
from .common import attempt, contacts_named, download


@require_permission("retention.manage")
def dashboard(request: TenantRequest) -> HttpResponse:
    data = selectors.dashboard(tenant=request.tenant, user=request.user)
    return render(request, "retention/dashboard.html", {"data": data})


@require_permission("retention.manage")
def policy_list(request: TenantRequest) -> HttpResponse:
    rows = selectors.policies_overview(tenant=request.tenant)
    return render(request, "retention/policy_list.html", {"rows": rows})


@require_permission("retention.manage")
def policy_detail(request: TenantRequest, category: str) -> HttpResponse:
    try:
        spec = category_get(category)
    except KeyError:
        raise Http404("No such category.") from None
    current = policies.policy_in_force(tenant=request.tenant, category=category)
    form = PolicyForm(request.POST or None, initial=PolicyForm.initial_from(current))
    actions = cast(forms.ChoiceField, form.fields["action"])
    actions.choices = [(a, label) for a, label in Action.choices if a in spec.actions]
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            policies.policy_propose(
                tenant=request.tenant,
                actor=actor_of(request),
                category=category,
                data=policies.PolicyInput(
                    min_retention_days=data["min_retention_days"],
                    max_retention_days=data["max_retention_days"],
                    archive_after_days=data["archive_after_days"],
                    action=data["action"],
                    approval_required=data["approval_required"],
                    rationale=data["rationale"],
                    reason=data["reason"],
                    legal_basis=data["legal_basis"],
                ),
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "The new version waits for a second compliance officer's approval.")
            return redirect("retention:policy_detail", category=category)
    context = {
        "category": spec,
        "current": current,
        "history": policies.policy_history(tenant=request.tenant, category=category),
        "form": form,
    }
    return render(request, "retention/policy_detail.html", context)


@require_POST
@require_permission("retention.manage")
def policy_decide(request: TenantRequest, policy_id) -> HttpResponse:
    with tenant_context(request.tenant):
        policy = RetentionPolicy.objects.filter(tenant=request.tenant, pk=policy_id).first()
    if policy is None:
        raise Http404("No such policy version.")
    approve = request.POST.get("decision") == "approve"
    return attempt(
        request,
        lambda: policies.policy_decide(
            tenant=request.tenant,
            actor=actor_of(request),
            policy=policy,
            approve=approve,
            sole_officer_reason=request.POST.get("sole_officer_reason", ""),
        ),
        "Version approved: it is in force from now." if approve else "Version rejected.",
        "retention:policy_detail",
        category=policy.category,
    )


@require_permission("retention.manage")
def exception_list(request: TenantRequest) -> HttpResponse:
    form = ExceptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.exception_request(
                tenant=request.tenant,
                actor=actor_of(request),
                category=data["category"],
                record_ids=data["record_ids"],
                reason=data["reason"],
                extend_until=data["extend_until"],
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Exception requested: another compliance officer decides it.")
            return redirect("retention:exception_list")
    context = {"form": form, "exceptions": selectors.exception_list(tenant=request.tenant)}
    return render(request, "retention/exception_list.html", context)


@require_POST
@require_permission("retention.manage")
def exception_decide(request: TenantRequest, exception_id) -> HttpResponse:
    with tenant_context(request.tenant):
        exception = RetentionException.objects.filter(tenant=request.tenant, pk=exception_id).first()
    if exception is None:
        raise Http404("No such exception.")
    approve = request.POST.get("decision") == "approve"
    return attempt(
        request,
        lambda: services.exception_decide(
            tenant=request.tenant,
            actor=actor_of(request),
            exception=exception,
            approve=approve,
            reason=request.POST.get("reason", ""),
            sole_officer_reason=request.POST.get("sole_officer_reason", ""),
        ),
        "Exception approved." if approve else "Exception rejected.",
        "retention:exception_list",
    )


@require_permission("retention.manage")
def archive_search(request: TenantRequest) -> HttpResponse:
    form = SearchForm(request.POST or None)
    hits = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        filters = archive.SearchFilter(
            contact_id=data["contact_id"],
            source=data["source"].strip(),
            categories=tuple(data["categories"]),
            date_from=data["date_from"],
            date_to=data["date_to"],
        )
        try:
            hits = archive.record_search(
                tenant=request.tenant, actor=actor_of(request), reason=data["reason"], filters=filters
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
    context = {"form": form, "hits": hits, "retrieve_form": ReasonForm()}
    return render(request, "retention/archive_search.html", context)


@require_POST
@require_permission("retention.manage")
def archive_retrieve(request: TenantRequest, archived_id) -> HttpResponse:
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the reason for opening this record.")
        return redirect("retention:archive_search")
    try:
        record = archive.archive_retrieve(
            tenant=request.tenant,
            actor=actor_of(request),
            archived_id=archived_id,
            reason=form.cleaned_data["reason"],
        )
    except NotFound:
        raise Http404("No such archived record.") from None
    response = render(request, "retention/archive_record.html", {"record": record})
    response["Cache-Control"] = "no-store"
    return response


@require_permission("retention.manage")
def export_list(request: TenantRequest) -> HttpResponse:
    active = [h for h in selectors.hold_list(tenant=request.tenant) if h.status == "active"]
    form = ExportForm(request.POST or None, holds=active)
    contact_ids = None
    if request.method == "POST" and form.is_valid():
        contact_ids = contacts_named(request, form, purpose="evidence export")
    if contact_ids is not None:
        data = form.cleaned_data
        hold = next((h for h in active if str(h.pk) == data["hold"]), None)
        scope = exports.ExportScope(contact_ids, data["sources"], data["date_from"], data["date_to"])
        if hold is not None and not (scope.contact_ids or scope.sources):
            scope = exports.ExportScope.of_hold(hold)
        try:
            export = exports.evidence_export_create(
                tenant=request.tenant,
                actor=actor_of(request),
                purpose=data["purpose"],
                recipient=data["recipient"],
                scope=scope,
                hold=hold,
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request,
                f"Package ready: {export.record_count} records, SHA-256 {export.package_sha256[:16]}…",
            )
            return redirect("retention:export_list")
    context = {"form": form, "exports": selectors.export_list(tenant=request.tenant)}
    return render(request, "retention/export_list.html", context)


@require_permission("retention.manage")
def export_download(request: TenantRequest, export_id) -> HttpResponse:
    try:
        export, content = exports.evidence_export_download(
            tenant=request.tenant, actor=actor_of(request), export_id=export_id
        )
    except NotFound:
        raise Http404("No such export.") from None
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("retention:export_list")
    return download(content, export.file_name, "application/zip")
