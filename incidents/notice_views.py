"""The incident page's notices to HHS, a State's media and the covered entity: prepare, then record
as sent. Each POST runs one service and returns to the incident."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import require_permission

from . import audience_notices
from .forms import AudienceNoticeForm, AudienceSentForm
from .services import PERMISSION
from .view_helpers import form_action_run, incident_or_404, who


@require_POST
@require_permission(PERMISSION)
def audience_notice_prepare(request: TenantRequest, incident_id) -> HttpResponse:
    incident = incident_or_404(request, incident_id)
    form_action_run(
        request,
        AudienceNoticeForm(request.POST),
        lambda data: audience_notices.audience_notice_prepare(**who(request), incident=incident, **data),
        "Notice prepared. Send it, then record the date and how it went.",
        refused="Choose a notice to prepare.",
        reasons=False,
    )
    return redirect("incidents:detail", incident_id=incident.pk)


@require_POST
@require_permission(PERMISSION)
def audience_notice_sent(request: TenantRequest, incident_id) -> HttpResponse:
    incident = incident_or_404(request, incident_id)
    form_action_run(
        request,
        AudienceSentForm(request.POST),
        lambda data: audience_notices.audience_notice_sent(**who(request), incident=incident, **data),
        "Notice recorded as sent. Its clock stopped.",
        refused="The notice was not recorded as sent.",
    )
    return redirect("incidents:detail", incident_id=incident.pk)
