"""Campaign pages: list, builder, detail (lint, reviews, exclusions, live progress, history),
workflow buttons and the review page (reports: views/reports.py)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.content_policy import email_preview_policy
from healthmail.disclosure import Viewer, shows_aggregates
from healthmail.errors import ApplicationError

from .. import selectors
from ..forms import CampaignForm, CommentForm, ScheduleForm, campaign_initial, campaign_input
from ..models import Campaign
from ..services import audience as audience_services
from ..services import campaigns as services
from ..services import previews, workflow
from ..services import templates as template_services
from ..templating.lint import findings_from_dicts
from .common import VIEW_CAMPAIGNS, campaign_or_404, require_any_permission

EDIT = "campaigns.edit"
REVIEW = ("campaigns.approve_compliance", "campaigns.approve_clinical")


@require_GET
@require_any_permission(*VIEW_CAMPAIGNS)
def campaign_list(request: TenantRequest) -> HttpResponse:
    return render(
        request, "campaigns/campaign_list.html", {"campaigns": selectors.campaign_list(tenant=request.tenant)}
    )


def _builder(request: TenantRequest, campaign: Campaign | None) -> HttpResponse:
    initial = (
        campaign_initial(campaign, selectors.campaign_variants(tenant=request.tenant, campaign=campaign))
        if campaign
        else {"sender_name": template_services.branding_get(tenant=request.tenant).sender_name}
    )
    form = CampaignForm(request.POST or None, initial=initial, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        data = campaign_input(form.cleaned_data)
        try:
            if campaign is None:
                campaign = services.campaign_create(tenant=request.tenant, actor=actor_of(request), data=data)
            else:
                campaign = services.campaign_update(
                    tenant=request.tenant, actor=actor_of(request), campaign=campaign, data=data
                )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Campaign “{campaign.name}” saved as a draft.")
            return redirect("campaigns:campaign_detail", campaign_id=campaign.pk)
    context = {"form": form, "campaign": campaign}
    return render(request, "campaigns/campaign_edit.html", context, status=400 if form.is_bound else 200)


@require_permission(EDIT)
def campaign_new(request: TenantRequest) -> HttpResponse:
    return _builder(request, None)


@require_permission(EDIT)
def campaign_edit(request: TenantRequest, campaign_id) -> HttpResponse:
    campaign = campaign_or_404(request, campaign_id)
    if campaign.is_locked:
        messages.error(
            request, f"The campaign is {campaign.get_status_display().lower()}: it can no longer be edited."
        )
        return redirect("campaigns:campaign_detail", campaign_id=campaign.pk)
    return _builder(request, campaign)


def _preview(request: TenantRequest, campaign: Campaign, language: str = ""):
    if campaign.template_version is not None:
        contents = template_services.version_contents(campaign.template_version)
        blocks, kind = campaign.template_version.blocks, campaign.template_version.kind
    elif campaign.template is not None:
        contents = template_services.template_contents(template=campaign.template)
        blocks, kind = template_services.tenant_blocks(tenant=request.tenant), campaign.template.kind
    else:
        return None
    return previews.preview(
        tenant=request.tenant,
        contents=contents,
        blocks=blocks,
        kind=kind,
        language=language,
        purpose=campaign.purpose,
        topic=campaign.topic,
        sender_name=campaign.sender_name,
    )


@email_preview_policy
@shows_aggregates
@require_GET
@require_any_permission(*VIEW_CAMPAIGNS)
def campaign_detail(request: TenantRequest, campaign_id) -> HttpResponse:
    campaign = campaign_or_404(request, campaign_id)
    tenant = request.tenant
    reviews = selectors.campaign_reviews(tenant=tenant, campaign=campaign)
    approved = {r.kind for r in reviews if r.decision == "approved"}
    audience = _audience(request, campaign)
    context = {
        "campaign": campaign,
        "findings": findings_from_dicts(campaign.lint),
        "variants": selectors.campaign_variants(tenant=tenant, campaign=campaign),
        "reviews": reviews,
        "required": [(kind, kind in approved) for kind in workflow.required_reviews(campaign)],
        "history": selectors.campaign_history(tenant=tenant, campaign=campaign),
        "launched": selectors.campaign_audience_shown(
            tenant=tenant, campaign=campaign, viewer=Viewer.of(request)
        ),
        "progress": selectors.campaign_progress(tenant=tenant, campaign=campaign, viewer=Viewer.of(request)),
        "may_edit": role_can(request.role, EDIT),
        "may_review": any(role_can(request.role, p) for p in REVIEW),
        "may_report": role_can(request.role, "reports.view"),
        "comment_form": CommentForm(),
        "preview": _preview(request, campaign),
        **audience,
        "schedule_form": ScheduleForm(confirm_needed=_sends_nothing(audience)),
    }
    return render(request, "campaigns/campaign_detail.html", context)


# Before it is submitted, while it is reviewed and before it is scheduled, the page says how many
# people the campaign would reach now and why the others would not.
AUDIENCE_SHOWN = (Campaign.Status.DRAFT, Campaign.Status.IN_REVIEW, Campaign.Status.APPROVED)


def _sends_nothing(audience: dict) -> bool:
    preview = audience.get("audience")
    return bool(preview and preview.sends_nothing)


def _audience(request: TenantRequest, campaign: Campaign) -> dict:
    if campaign.status not in AUDIENCE_SHOWN:
        return {}
    try:
        preview = audience_services.campaign_audience_preview(tenant=request.tenant, campaign=campaign)
    except ApplicationError as error:
        return {"audience_error": error.message}
    figures = selectors.audience_preview_shown(
        tenant=request.tenant, campaign=campaign, viewer=Viewer.of(request), preview=preview
    )
    return {"audience": preview, "audience_figures": figures}


@shows_aggregates
@require_GET
@require_any_permission(*VIEW_CAMPAIGNS)
def campaign_progress(request: TenantRequest, campaign_id) -> HttpResponse:
    """The htmx partial the detail page polls while the campaign is sending."""
    campaign = campaign_or_404(request, campaign_id)
    progress = selectors.campaign_progress(
        tenant=request.tenant, campaign=campaign, viewer=Viewer.of(request)
    )
    response = render(request, "campaigns/_progress.html", {"campaign": campaign, "progress": progress})
    shown = request.GET.get("shown")
    if shown and shown != campaign.status:
        response["HX-Refresh"] = "true"  # the status moved on: the page's buttons must follow
    return response


def _step(
    request: TenantRequest, campaign_id, step, success: str, *, commented: bool = True, **kwargs
) -> HttpResponse:
    campaign = campaign_or_404(request, campaign_id)
    if commented:
        kwargs["comment"] = request.POST.get("comment", "")
    try:
        step(tenant=request.tenant, actor=actor_of(request), campaign=campaign, **kwargs)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, success)
    return redirect("campaigns:campaign_detail", campaign_id=campaign.pk)


@require_POST
@require_permission(EDIT)
def campaign_submit(request: TenantRequest, campaign_id) -> HttpResponse:
    return _step(request, campaign_id, workflow.campaign_submit, "Submitted for review.")


@require_POST
@require_permission(EDIT)
def campaign_withdraw(request: TenantRequest, campaign_id) -> HttpResponse:
    return _step(
        request, campaign_id, workflow.campaign_withdraw, "Withdrawn: the campaign is a draft again."
    )


@require_POST
@require_permission(EDIT)
def campaign_schedule(request: TenantRequest, campaign_id) -> HttpResponse:
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose when to send.")
        return redirect("campaigns:campaign_detail", campaign_id=campaign_id)
    data = form.cleaned_data
    later = data["when"] == "later"
    if later and not (data.get("send_date") and data.get("send_time")):
        messages.error(request, "Give a date and a time.")
        return redirect("campaigns:campaign_detail", campaign_id=campaign_id)
    return _step(
        request,
        campaign_id,
        workflow.campaign_schedule,
        "Scheduled. Progress shows here once it starts.",
        commented=False,
        send_date=data["send_date"] if later else None,
        send_time=data["send_time"] if later else None,
        timezone_mode=data["timezone_mode"],
        confirm_empty=data.get("confirm_empty", False),
    )


@require_POST
@require_permission(EDIT)
def campaign_unschedule(request: TenantRequest, campaign_id) -> HttpResponse:
    return _step(request, campaign_id, workflow.campaign_unschedule, "Unscheduled.", commented=False)


@require_POST
@require_permission(EDIT)
def campaign_pause(request: TenantRequest, campaign_id) -> HttpResponse:
    return _step(request, campaign_id, workflow.campaign_pause, "Paused: messages not yet sent wait.")


@require_POST
@require_permission(EDIT)
def campaign_resume(request: TenantRequest, campaign_id) -> HttpResponse:
    return _step(request, campaign_id, workflow.campaign_resume, "Resumed.")


@require_POST
@require_any_permission(EDIT, "campaigns.approve_compliance")
def campaign_cancel(request: TenantRequest, campaign_id) -> HttpResponse:
    return _step(request, campaign_id, workflow.campaign_cancel, "Cancelled: no further messages go out.")


# --- Reviews --------------------------------------------------------------------------------------


@require_GET
@require_any_permission(*REVIEW)
def approval_list(request: TenantRequest) -> HttpResponse:
    waiting = selectors.approvals_waiting(tenant=request.tenant, role=request.role)
    return render(request, "campaigns/approval_list.html", {"campaigns": waiting})


@require_POST
@require_any_permission(*REVIEW)
def campaign_review(request: TenantRequest, campaign_id) -> HttpResponse:
    campaign = campaign_or_404(request, campaign_id)
    kind = "clinical" if role_can(request.role, "campaigns.approve_clinical") else "compliance"
    comment = request.POST.get("comment", "")
    try:
        if request.POST.get("decision") == "approve":
            campaign = workflow.campaign_approve(
                tenant=request.tenant,
                actor=actor_of(request),
                role=request.role,
                campaign=campaign,
                kind=kind,
                comment=comment,
            )
            messages.success(
                request,
                "Approved."
                if campaign.status == Campaign.Status.APPROVED
                else "Your approval is recorded; another review is still needed.",
            )
        else:
            workflow.campaign_reject(
                tenant=request.tenant,
                actor=actor_of(request),
                role=request.role,
                campaign=campaign,
                kind=kind,
                comment=comment,
            )
            messages.success(request, "Changes requested: the campaign is back with its author.")
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("campaigns:campaign_detail", campaign_id=campaign.pk)
