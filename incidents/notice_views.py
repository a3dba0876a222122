"""The incident page's notices to HHS, a State's media and the covered entity: prepare, then record
as sent. Each POST runs one service and returns to the incident."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from healthmail.accounts.views.access import require_permission
from healthmail.errors import ApplicationError

from . import audience_notices
from .forms import AudienceNoticeForm, AudienceSentForm
from .services import PERMISSION
from .views import _incident_or_404, _who


@require_POST
@require_permission(PERMISSION)
def audience_notice_prepare(request: HttpRequest, incident_id) -> HttpResponse:
    incident = _incident_or_404(request, incident_id)
    form = AudienceNoticeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a notice to prepare.")
    else:
        try:
            audience_notices.audience_notice_prepare(**_who(request), incident=incident, **form.cleaned_data)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Notice prepared. Send it, then record the date and how it went.")
    return redirect("incidents:detail", incident_id=incident.pk)


@require_POST
@require_permission(PERMISSION)
def audience_notice_sent(request: HttpRequest, incident_id) -> HttpResponse:
    incident = _incident_or_404(request, incident_id)
    form = AudienceSentForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(
            f"{form.fields[n].label or n}: {' '.join(str(m) for m in e)}" for n, e in form.errors.items()
        )
        messages.error(request, f"The notice was not recorded as sent. {problems}")
    else:
        try:
            audience_notices.audience_notice_sent(**_who(request), incident=incident, **form.cleaned_data)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Notice recorded as sent. Its clock stopped.")
    return redirect("incidents:detail", incident_id=incident.pk)
