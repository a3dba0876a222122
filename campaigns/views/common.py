"""Access helpers shared by the campaign pages."""

from __future__ import annotations

from django.http import Http404

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import require_any_permission  # noqa: F401 - campaign pages use it
from healthmail.errors import NotFound

from .. import selectors

VIEW_CAMPAIGNS = (
    "campaigns.edit",
    "campaigns.approve_compliance",
    "campaigns.approve_clinical",
    "reports.view",
)


def campaign_or_404(request: TenantRequest, campaign_id):
    try:
        return selectors.campaign_get(tenant=request.tenant, campaign_id=campaign_id)
    except NotFound:
        raise Http404("No such campaign.") from None


def template_or_404(request: TenantRequest, template_id):
    try:
        return selectors.template_get(tenant=request.tenant, template_id=template_id)
    except NotFound:
        raise Http404("No such template.") from None
