"""Oversight pages: periodic access reviews (admins review, compliance reads the evidence) and
policy acknowledgements (admins publish, every member acknowledges, compliance sees who has not)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import forbidden, require_permission
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context

from . import access_reviews, policies
from .forms import PolicyForm
from .models import AccessReview, AccessReviewEntry, PolicyVersion


@require_permission(access_reviews.VIEW)
def access_review_list(request: TenantRequest) -> HttpResponse:
    with tenant_context(request.tenant):
        due = access_reviews.due_on(tenant=request.tenant)
    context = {
        "rows": access_reviews.reviews_completed(tenant=request.tenant),
        "due_on": due,
        "days_left": (due - timezone.localdate()).days,
        "overdue_days": max(0, (timezone.localdate() - due).days),
        "interval": access_reviews.interval_days(),
    }
    return render(request, "incidents/access_review_list.html", context)


def _decisions(request: TenantRequest, members) -> dict:
    return {
        m.pk: access_reviews.Decision(
            request.POST.get(f"decision-{m.pk}", ""), request.POST.get(f"note-{m.pk}", "")
        )
        for m in members
    }


@require_permission(access_reviews.PERFORM)
def access_review_new(request: TenantRequest) -> HttpResponse:
    """GET: every active member with keep/remove and a note. POST: the review, written at once."""
    with tenant_context(request.tenant):
        members = access_reviews.members_now(tenant=request.tenant)
    error = ""
    if request.method == "POST":
        try:
            review = access_reviews.access_review_complete(
                tenant=request.tenant,
                user=request.user,
                role=request.role,
                decisions=_decisions(request, members),
            )
        except ApplicationError as refused:
            error = refused.message
        else:
            messages.success(request, "Access review recorded. Removals took effect at once.")
            return redirect("incidents:access_review_detail", review_id=review.pk)
    rows = [
        (m, request.POST.get(f"decision-{m.pk}", "keep"), request.POST.get(f"note-{m.pk}", ""))
        for m in members
    ]
    context = {"rows": rows, "error": error}
    return render(request, "incidents/access_review_new.html", context, status=400 if error else 200)


@require_permission(access_reviews.VIEW)
def access_review_detail(request: TenantRequest, review_id) -> HttpResponse:
    with tenant_context(request.tenant):
        review = get_object_or_404(
            AccessReview.objects.select_related("reviewed_by"), tenant=request.tenant, pk=review_id
        )
        entries = list(AccessReviewEntry.objects.filter(tenant=request.tenant, review=review))
    return render(request, "incidents/access_review_detail.html", {"review": review, "entries": entries})


def _policy_page(request: TenantRequest, form: PolicyForm, status: int = 200) -> HttpResponse:
    context = {"statuses": policies.policy_status(tenant=request.tenant), "form": form}
    return render(request, "incidents/policy_list.html", context, status=status)


@require_permission(policies.VIEW)
def policy_list(request: TenantRequest) -> HttpResponse:
    return _policy_page(request, PolicyForm())


@require_POST
@require_permission(policies.MANAGE)
def policy_publish(request: TenantRequest) -> HttpResponse:
    form = PolicyForm(request.POST)
    if form.is_valid():
        try:
            version = policies.policy_publish(
                tenant=request.tenant, user=request.user, role=request.role, **form.cleaned_data
            )
        except ApplicationError as error:
            form.add_error(error.code if error.code in form.fields else None, error.message)
        else:
            messages.success(
                request, f"Version {version.number} published: every member is asked to acknowledge it."
            )
            return redirect("incidents:policies")
    return _policy_page(request, form, status=400)


def my_policies(request: TenantRequest) -> HttpResponse:
    """Every member: the current policies they have not acknowledged, with their text."""
    if request.tenant is None or request.membership is None:
        return forbidden(request, "Choose an organization first.")
    pending = policies.pending_for(tenant=request.tenant, user=request.user)
    return render(request, "incidents/my_policies.html", {"pending": pending})


@require_POST
def policy_acknowledge(request: TenantRequest, version_id) -> HttpResponse:
    if request.tenant is None or request.membership is None:
        return forbidden(request, "Choose an organization first.")
    with tenant_context(request.tenant):
        version = get_object_or_404(
            PolicyVersion.objects.select_related("policy"), tenant=request.tenant, pk=version_id
        )
    try:
        policies.policy_acknowledge(tenant=request.tenant, user=request.user, version=version)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"You acknowledged {version.policy.title}, version {version.number}.")
    return redirect("incidents:my_policies")
