"""Denials of access, their review and fees (164.524(a)(2)-(4), (c)(4), (d)): compliance officers deny
and record fees on the access requests page; clinical reviewers review the denials a patient asked to
have reviewed. Each POST runs one service and returns to its page."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from healthmail.accounts.models import Membership
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import Role
from healthmail.accounts.views.access import require_permission
from healthmail.tenants.context import tenant_context
from healthmail.web.actions import service_run

from . import access_denials
from .forms import DenialForm, DenialReviewForm, FeeForm
from .models import AccessDenial
from .services import PERMISSION
from .view_helpers import access_request_or_404, form_action_run, who

REVIEW = "access_requests.review_denials"


def professionals(tenant) -> list[tuple[str, str]]:
    """The organization's clinical reviewers (licensed professionals), for the denial form."""
    with tenant_context(tenant):
        members = Membership.objects.for_tenant(tenant).filter(role=Role.CLINICAL_REVIEWER, is_active=True)
        return [(str(m.user_id), m.user.email) for m in members.select_related("user")]


@require_POST
@require_permission(PERMISSION)
def access_request_deny(request: TenantRequest, request_id) -> HttpResponse:
    access = access_request_or_404(request, request_id)
    form_action_run(
        request,
        DenialForm(request.POST, prefix=f"deny-{access.pk}", professionals=professionals(request.tenant)),
        lambda data: access_denials.denial_record(
            **who(request), request=access, **(data | {"determined_by_id": data["determined_by_id"] or None})
        ),
        "Denial recorded; the written denial was sent through the secure portal.",
        refused="The denial was not recorded.",
    )
    return redirect("incidents:access_requests")


@require_POST
@require_permission(PERMISSION)
def access_request_fee(request: TenantRequest, request_id) -> HttpResponse:
    access = access_request_or_404(request, request_id)
    form_action_run(
        request,
        FeeForm(request.POST, prefix=f"fee-{access.pk}"),
        lambda data: access_denials.fee_record(
            **who(request), request=access, fee=access_denials.FeeInput(**data)
        ),
        "Fee recorded.",
        refused="The fee was not recorded.",
    )
    return redirect("incidents:access_requests")


def _denial_or_404(request, request_id) -> AccessDenial:
    with tenant_context(request.tenant):
        return get_object_or_404(
            AccessDenial.objects.select_related("request"), tenant=request.tenant, request_id=request_id
        )


@require_POST
@require_permission(PERMISSION)
def denial_review_request(request: TenantRequest, request_id) -> HttpResponse:
    denial = _denial_or_404(request, request_id)
    service_run(
        request,
        lambda: access_denials.denial_review_request(**who(request), denial=denial),
        "Review requested: a clinical reviewer who took no part will decide.",
    )
    return redirect("incidents:access_requests")


@require_permission(REVIEW)
def denial_reviews(request: TenantRequest) -> HttpResponse:
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
def denial_review_decide(request: TenantRequest, request_id) -> HttpResponse:
    denial = _denial_or_404(request, request_id)
    form_action_run(
        request,
        DenialReviewForm(request.POST, prefix=f"review-{request_id}"),
        lambda data: access_denials.denial_review_decide(**who(request), denial=denial, **data),
        "Review recorded; the individual was told in writing.",
        refused="The review was not recorded.",
    )
    return redirect("incidents:denial_reviews")
