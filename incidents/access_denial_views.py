"""Denials of access, their review and fees (164.524(a)(2)-(4), (c)(4), (d)): compliance officers deny
and record fees on the access requests page; clinical reviewers review the denials a patient asked to
have reviewed. Each POST runs one service and returns to its page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from healthmail.accounts.models import Membership
from healthmail.accounts.roles import Role
from healthmail.accounts.views.access import require_permission
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context

from . import access_denials
from .forms import DenialForm, DenialReviewForm, FeeForm
from .models import AccessDenial, AccessRequest
from .oversight_views import MemberRequest
from .services import PERMISSION

REVIEW = "access_requests.review_denials"


def professionals(tenant) -> list[tuple[str, str]]:
    """The organization's clinical reviewers (licensed professionals), for the denial form."""
    with tenant_context(tenant):
        members = Membership.objects.for_tenant(tenant).filter(role=Role.CLINICAL_REVIEWER, is_active=True)
        return [(str(m.user_id), m.user.email) for m in members.select_related("user")]


def _request_or_404(request, request_id) -> AccessRequest:
    with tenant_context(request.tenant):
        return get_object_or_404(AccessRequest, tenant=request.tenant, pk=request_id)


def _who(request) -> dict:
    return {"tenant": request.tenant, "user": request.user, "role": request.role}


def _refusals(form) -> str:
    return "; ".join(
        f"{form.fields[n].label or n}: {' '.join(str(m) for m in e)}" for n, e in form.errors.items()
    )


@require_POST
@require_permission(PERMISSION)
def access_request_deny(request: MemberRequest, request_id) -> HttpResponse:
    access = _request_or_404(request, request_id)
    form = DenialForm(request.POST, prefix=f"deny-{access.pk}", professionals=professionals(request.tenant))
    if not form.is_valid():
        messages.error(request, f"The denial was not recorded. {_refusals(form)}")
    else:
        data = form.cleaned_data
        data["determined_by_id"] = data["determined_by_id"] or None
        try:
            access_denials.denial_record(**_who(request), request=access, **data)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request, "Denial recorded; the written denial was sent through the secure portal."
            )
    return redirect("incidents:access_requests")


@require_POST
@require_permission(PERMISSION)
def access_request_fee(request: MemberRequest, request_id) -> HttpResponse:
    access = _request_or_404(request, request_id)
    form = FeeForm(request.POST, prefix=f"fee-{access.pk}")
    if not form.is_valid():
        messages.error(request, f"The fee was not recorded. {_refusals(form)}")
    else:
        try:
            access_denials.fee_record(
                **_who(request), request=access, fee=access_denials.FeeInput(**form.cleaned_data)
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Fee recorded.")
    return redirect("incidents:access_requests")


def _denial_or_404(request, request_id) -> AccessDenial:
    with tenant_context(request.tenant):
        return get_object_or_404(
            AccessDenial.objects.select_related("request"), tenant=request.tenant, request_id=request_id
        )


@require_POST
@require_permission(PERMISSION)
def denial_review_request(request: MemberRequest, request_id) -> HttpResponse:
    denial = _denial_or_404(request, request_id)
    try:
        access_denials.denial_review_request(**_who(request), denial=denial)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Review requested: a clinical reviewer who took no part will decide.")
    return redirect("incidents:access_requests")


@require_permission(REVIEW)
def denial_reviews(request: MemberRequest) -> HttpResponse:
    with tenant_context(request.tenant):
        waiting = list(
            AccessDenial.objects.filter(
                tenant=request.tenant, review_requested_at__isnull=False, reviewed_at__isnull=True
            ).select_related("request")
        )
    rows = [(d, DenialReviewForm(prefix=f"review-{d.request_id}")) for d in waiting]
    return render(request, "incidents/denial_reviews.html", {"rows": rows})


@require_POST
@require_permission(REVIEW)
def denial_review_decide(request: MemberRequest, request_id) -> HttpResponse:
    denial = _denial_or_404(request, request_id)
    form = DenialReviewForm(request.POST, prefix=f"review-{request_id}")
    if not form.is_valid():
        messages.error(request, f"The review was not recorded. {_refusals(form)}")
    else:
        try:
            access_denials.denial_review_decide(**_who(request), denial=denial, **form.cleaned_data)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Review recorded; the individual was told in writing.")
    return redirect("incidents:denial_reviews")
