"""Tenant-admin pages for people: list, invite, change role, deactivate, reset MFA."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from healthmail.accounts import selectors, services
from healthmail.accounts.forms import InviteForm, OptionalReasonForm, ReasonForm, RoleForm
from healthmail.accounts.models import Membership
from healthmail.accounts.requests import TenantRequest
from healthmail.errors import ApplicationError, NotFound

from .access import actor_of, require_permission

PERMISSION = "tenant.manage_users"


def _member(request: TenantRequest, membership_id: uuid.UUID) -> Membership:
    try:
        return selectors.member_get(tenant=request.tenant, membership_id=membership_id)
    except NotFound as error:
        raise Http404(error.message) from error


def _detail(
    request: TenantRequest, membership: Membership, *, status: int = 200, **forms: object
) -> HttpResponse:
    context = {
        "member": membership,
        "is_self": membership.user_id == request.user.pk,
        "role_form": forms.get("role_form") or RoleForm(initial={"role": membership.role}),
        "deactivate_form": forms.get("deactivate_form") or OptionalReasonForm(prefix="deactivate"),
        "reset_form": forms.get("reset_form") or ReasonForm(prefix="reset"),
        "error": forms.get("error", ""),
    }
    return render(request, "accounts/member_detail.html", context, status=status)


def _act(
    request: TenantRequest,
    membership: Membership,
    action: Callable[[], object],
    success: str,
    **forms: object,
) -> HttpResponse:
    """Run one service; on refusal show the member page again with the reason and its status."""
    try:
        action()
    except ApplicationError as error:
        return _detail(request, membership, status=error.status_code, error=error.message, **forms)
    messages.success(request, success)
    return redirect("accounts:member_detail", membership_id=membership.pk)


@require_permission(PERMISSION)
def member_list(request: TenantRequest) -> HttpResponse:
    members = selectors.member_list(tenant=request.tenant)
    return render(request, "accounts/member_list.html", {"members": members})


@require_permission(PERMISSION)
@require_http_methods(["GET", "POST"])
def member_invite(request: TenantRequest) -> HttpResponse:
    form = InviteForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            membership = services.member_invite(
                actor=actor_of(request),
                tenant=request.tenant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
            status = error.status_code
        else:
            messages.success(
                request,
                f"{membership.user.email} was added. The invitation email is queued "
                "(retried until the mail server accepts it).",
            )
            return redirect("accounts:member_list")
    return render(request, "accounts/member_invite.html", {"form": form}, status=status)


@require_permission(PERMISSION)
def member_detail(request: TenantRequest, membership_id: uuid.UUID) -> HttpResponse:
    return _detail(request, _member(request, membership_id))


@require_permission(PERMISSION)
@require_POST
def member_role(request: TenantRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = _member(request, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _detail(request, membership, status=400, role_form=form)
    role = form.cleaned_data["role"]
    return _act(
        request,
        membership,
        lambda: services.member_change_role(
            actor=actor_of(request), tenant=request.tenant, membership=membership, role=role
        ),
        "Role changed.",
        role_form=form,
    )


@require_permission(PERMISSION)
@require_POST
def member_deactivate(request: TenantRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = _member(request, membership_id)
    form = OptionalReasonForm(request.POST, prefix="deactivate")
    if not form.is_valid():
        return _detail(request, membership, status=400, deactivate_form=form)
    return _act(
        request,
        membership,
        lambda: services.member_deactivate(
            actor=actor_of(request),
            tenant=request.tenant,
            membership=membership,
            reason=form.cleaned_data["reason"],
        ),
        "Deactivated. Their next request in this organization is refused.",
        deactivate_form=form,
    )


@require_permission(PERMISSION)
@require_POST
def member_reactivate(request: TenantRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = _member(request, membership_id)
    return _act(
        request,
        membership,
        lambda: services.member_reactivate(
            actor=actor_of(request), tenant=request.tenant, membership=membership
        ),
        "Reactivated.",
    )


@require_permission(PERMISSION)
@require_POST
def member_mfa_reset(request: TenantRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = _member(request, membership_id)
    form = ReasonForm(request.POST, prefix="reset")
    if not form.is_valid():
        return _detail(request, membership, status=400, reset_form=form)
    return _act(
        request,
        membership,
        lambda: services.mfa_reset(
            actor=actor_of(request),
            tenant=request.tenant,
            membership=membership,
            reason=form.cleaned_data["reason"],
        ),
        "Two-factor authentication reset. They set up a new authenticator at their next sign-in.",
        reset_form=form,
    )


@require_permission(PERMISSION)
@require_POST
def member_invitation_resend(request: TenantRequest, membership_id: uuid.UUID) -> HttpResponse:
    membership = _member(request, membership_id)
    return _act(
        request,
        membership,
        lambda: services.member_invitation_resend(
            actor=actor_of(request), tenant=request.tenant, membership=membership
        ),
        "The invitation email is queued again.",
    )
