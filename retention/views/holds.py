"""Legal holds: list, create (custodians notified), detail with acknowledgements, approve, review,
release; and the custodian's own notices (any member can be a custodian)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from healthmail.accounts.models import Membership
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import actor_of, forbidden, require_permission
from healthmail.errors import ApplicationError

from .. import holds, selectors
from ..forms import HoldForm, ReasonForm
from .common import attempt, contacts_named


def _hold_or_404(request: TenantRequest, hold_id):
    hold = selectors.hold_get(tenant=request.tenant, hold_id=hold_id)
    if hold is None:
        raise Http404("No such hold.")
    return hold


@require_permission("legal_holds.manage")
def hold_list(request: TenantRequest) -> HttpResponse:
    return render(request, "retention/hold_list.html", {"holds": selectors.hold_list(tenant=request.tenant)})


@require_permission("legal_holds.manage")
def hold_create(request: TenantRequest) -> HttpResponse:
    members = Membership.objects.filter(tenant=request.tenant, is_active=True).select_related("user")
    form = HoldForm(request.POST or None, members=members)
    if request.method == "POST" and form.is_valid():
        contact_ids = contacts_named(request, form, purpose="legal hold")
        hold = None if contact_ids is None else _hold_create(request, form, contact_ids)
        if hold is not None:
            messages.success(
                request,
                "Legal hold placed: covered records are frozen from now; the custodians' email notices are "
                "queued (retried until the mail server accepts them).",
            )
            return redirect("retention:hold_detail", hold_id=hold.pk)
    return render(request, "retention/hold_form.html", {"form": form})


def _hold_create(request: TenantRequest, form: HoldForm, contact_ids: tuple):
    data = form.cleaned_data
    scope = holds.HoldScope(
        contact_ids=contact_ids,
        sources=data["sources"],
        categories=tuple(data["categories"]),
        date_from=data["date_from"],
        date_to=data["date_to"],
        custodian_ids=tuple(data["custodians"]),
        free_query=data["free_query"],
    )
    try:
        return holds.hold_create(
            tenant=request.tenant,
            actor=actor_of(request),
            matter=data["matter"],
            reason=data["reason"],
            counsel=data["counsel"],
            scope=scope,
            review_every_days=data["review_every_days"],
        )
    except ApplicationError as error:
        form.add_error(None, error.message)
        return None


@require_permission("legal_holds.manage")
def hold_detail(request: TenantRequest, hold_id) -> HttpResponse:
    hold = _hold_or_404(request, hold_id)
    context = {
        "hold": hold,
        "custodians": selectors.hold_custodians(tenant=request.tenant, hold=hold),
        "reason_form": ReasonForm(),
    }
    return render(request, "retention/hold_detail.html", context)


def _hold_action(
    request: TenantRequest, hold_id, service: Callable[..., object], success: str, **posted: str
) -> HttpResponse:
    """Run `service` on the hold as the signed-in member; `posted` maps each further argument of the
    service to the POST field it is read from."""
    hold = _hold_or_404(request, hold_id)
    fields = {argument: request.POST.get(name, "") for argument, name in posted.items()}
    return attempt(
        request,
        lambda: service(tenant=request.tenant, actor=actor_of(request), hold=hold, **fields),
        success,
        "retention:hold_detail",
        hold_id=hold.pk,
    )


@require_POST
@require_permission("legal_holds.manage")
def hold_approve(request: TenantRequest, hold_id) -> HttpResponse:
    return _hold_action(
        request, hold_id, holds.hold_approve, "Hold approved.", sole_officer_reason="sole_officer_reason"
    )


@require_POST
@require_permission("legal_holds.manage")
def hold_review(request: TenantRequest, hold_id) -> HttpResponse:
    success = "Review recorded: the hold stays in force."
    return _hold_action(request, hold_id, holds.hold_review, success, note="reason")


@require_POST
@require_permission("legal_holds.manage")
def hold_release(request: TenantRequest, hold_id) -> HttpResponse:
    success = "Release asked for: the hold stays in force until another officer confirms it."
    return _hold_action(request, hold_id, holds.hold_release_request, success, reason="reason")


@require_POST
@require_permission("legal_holds.manage")
def hold_release_confirm(request: TenantRequest, hold_id) -> HttpResponse:
    success = "Hold released: its records follow their retention policies again."
    return _hold_action(
        request, hold_id, holds.hold_release, success, sole_officer_reason="sole_officer_reason"
    )


@require_POST
@require_permission("legal_holds.manage")
def hold_notify(request: TenantRequest, hold_id) -> HttpResponse:
    success = "Reminders to the custodians who have not acknowledged are queued by email."
    return _hold_action(request, hold_id, holds.hold_notify_again, success)


def my_holds(request: TenantRequest) -> HttpResponse:
    """The in-app notice: holds naming the signed-in member as custodian."""
    if request.tenant is None or request.membership is None:
        return forbidden(request, "Choose an organization first.")
    pending = selectors.my_acknowledgements(tenant=request.tenant, user=request.user)
    return render(request, "retention/my_holds.html", {"pending": pending})


@require_POST
def hold_acknowledge(request: TenantRequest, hold_id) -> HttpResponse:
    if request.tenant is None or request.membership is None:
        return forbidden(request, "Choose an organization first.")
    hold = selectors.hold_get(tenant=request.tenant, hold_id=hold_id)
    if hold is None:
        raise Http404("No such hold.")
    back = "retention:hold_detail" if role_can(request.role, "legal_holds.manage") else "retention:my_holds"
    kwargs = {"hold_id": hold.pk} if back == "retention:hold_detail" else {}
    return attempt(
        request,
        lambda: holds.hold_acknowledge(tenant=request.tenant, actor=actor_of(request), hold=hold),
        "Acknowledged: thank you. Preserve everything in the hold's scope.",
        back,
        **kwargs,
    )
