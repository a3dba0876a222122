"""Report pages: one campaign's report (charts with table equivalents), its CSV and PDF, and the
comparison across campaigns. Every figure comes through the disclosure policy (campaigns/reporting)."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit import services as audit
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.disclosure import Viewer, shows_aggregates
from healthmail.errors import NotFound

from ..reporting import compare, export
from ..reporting.report import campaign_report_full
from ..selectors import campaign_list
from .common import campaign_or_404

REPORTS = "reports.view"


def _report(request: TenantRequest, campaign_id):
    campaign = campaign_or_404(request, campaign_id)
    return campaign_report_full(tenant=request.tenant, campaign=campaign, viewer=Viewer.of(request))


def _exported(request: TenantRequest, report, file_format: str) -> None:
    """A report leaving the application as a file is a record of its own (who took which figures)."""
    audit.record(
        actor=actor_of(request),
        action="campaign.report_export",
        tenant=request.tenant,
        target=report.campaign,
        details={"format": file_format},
    )


@require_GET
@shows_aggregates
@require_permission(REPORTS)
def campaign_report(request: TenantRequest, campaign_id) -> HttpResponse:
    report = _report(request, campaign_id)
    context = {
        "campaign": report.campaign,
        "report": report,
        "series_chart": report.series.chart(),
        "delivery_chart": report.delivery_chart(),
        "links_chart": report.links_chart(),
    }
    return render(request, "campaigns/campaign_report.html", context)


@require_GET
@shows_aggregates
@require_permission(REPORTS)
def campaign_report_csv(request: TenantRequest, campaign_id) -> HttpResponse:
    report = _report(request, campaign_id)
    _exported(request, report, "csv")
    response = HttpResponse(export.report_csv(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="campaign-{report.campaign.pk}-report.csv"'
    return response


@require_GET
@shows_aggregates
@require_permission(REPORTS)
def campaign_report_pdf(request: TenantRequest, campaign_id) -> HttpResponse:
    report = _report(request, campaign_id)
    _exported(request, report, "pdf")
    response = HttpResponse(export.report_pdf(report), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="campaign-{report.campaign.pk}-report.pdf"'
    return response


@require_GET
@shows_aggregates
@require_permission(REPORTS)
def campaign_compare(request: TenantRequest) -> HttpResponse:
    try:
        chosen = compare.compared_campaigns(
            tenant=request.tenant, campaign_ids=request.GET.getlist("campaign")
        )
    except NotFound as error:
        raise Http404(error.message) from error
    compared = compare.campaign_comparison(tenant=request.tenant, campaigns=chosen, viewer=Viewer.of(request))
    context = {
        "compared": compared,
        "metrics": compare.COMPARED_METRICS,
        "chart": compare.comparison_chart(compared),
        "choices": campaign_list(tenant=request.tenant).filter(launched_at__isnull=False)[:100],
        "chosen": {str(c.pk) for c in chosen},
        "max_compared": compare.MAX_COMPARED,
    }
    return render(request, "campaigns/campaign_compare.html", context)
