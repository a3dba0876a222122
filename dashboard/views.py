"""The home page per role (a desk for marketers and compliance officers, the task list for the
others) and the calendar of sends. Parse, authorize, one selector, render."""

from __future__ import annotations

import datetime
from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from campaigns.views.common import require_any_permission
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import HOME_TITLES, Role, role_can
from healthmail.accounts.views import home as accounts_home
from healthmail.disclosure import Viewer, shows_aggregates

from . import calendar, selectors

CALENDAR_PERMISSIONS = ("campaigns.edit", "reports.view", "campaigns.approve_compliance")


def _tasks(role: str) -> list:
    return accounts_home.ROLE_TASKS.get(role, [])


@require_GET
@shows_aggregates
def home(request: TenantRequest) -> HttpResponse:
    """Marketers and compliance officers land on their desk; other roles on their list of tasks."""
    role = request.role
    context: dict[str, Any] = {"title": HOME_TITLES.get(role, ""), "tasks": _tasks(role)}
    if role == Role.MARKETER:
        marketer = selectors.marketer_desk(tenant=request.tenant, viewer=Viewer.of(request))
        context |= {
            "desk": marketer,
            "engagement_chart": marketer.engagement.chart(),
            "deliverability_chart": marketer.deliverability_chart(),
            "window_days": selectors.WINDOW_DAYS,
        }
        return render(request, "dashboard/marketer.html", context)
    if role == Role.COMPLIANCE_OFFICER:
        compliance = selectors.compliance_desk(tenant=request.tenant, role=role, viewer=Viewer.of(request))
        context |= {"desk": compliance, "expiring_chart": compliance.expiring_chart()}
        return render(request, "dashboard/compliance.html", context)
    return accounts_home.home(request)


@require_GET
@shows_aggregates
@require_any_permission(*CALENDAR_PERMISSIONS)
def send_calendar(request: TenantRequest) -> HttpResponse:
    view = request.GET.get("view", calendar.MONTH)
    errors = []
    if view not in (calendar.MONTH, calendar.WEEK):
        errors.append("Choose the month or the week view.")
        view = calendar.MONTH
    anchor = calendar.today(request.tenant)
    if request.GET.get("date"):
        try:
            anchor = datetime.date.fromisoformat(request.GET["date"])
        except ValueError:
            errors.append("Give the date as YYYY-MM-DD.")
    shown = calendar.send_calendar(tenant=request.tenant, viewer=Viewer.of(request), view=view, anchor=anchor)
    context = {
        "calendar": shown,
        "errors": errors,
        "weekdays": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        "may_edit": role_can(request.role, "campaigns.edit"),
    }
    return render(request, "dashboard/calendar.html", context, status=400 if errors else 200)
