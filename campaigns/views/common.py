"""Access helpers shared by the campaign pages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse

from audit import services as audit
from audit.models import AuditEvent
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import actor_of, forbidden
from healthmail.errors import ApplicationError, NotFound

from .. import selectors

VIEW_CAMPAIGNS = (
    "campaigns.edit",
    "campaigns.approve_compliance",
    "campaigns.approve_clinical",
    "reports.view",
)


def require_any_permission(*permissions: str) -> Callable:
    """Refuse (403, audited) unless the role holds one of the permissions."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not any(role_can(request.role, p) for p in permissions):
                audit.record(
                    actor=actor_of(request),
                    action="authz.denied",
                    outcome=AuditEvent.Outcome.DENIED,
                    tenant=request.tenant,
                    reason=" or ".join(permissions),
                    details={"view": view.__name__},
                )
                return forbidden(request, "Your role does not allow this page.")
            return view(request, *args, **kwargs)

        return guarded

    return decorator


def campaign_or_404(request: HttpRequest, campaign_id):
    try:
        return selectors.campaign_get(tenant=request.tenant, campaign_id=campaign_id)
    except NotFound:
        raise Http404("No such campaign.") from None


def template_or_404(request: HttpRequest, template_id):
    try:
        return selectors.template_get(tenant=request.tenant, template_id=template_id)
    except NotFound:
        raise Http404("No such template.") from None


def report_error(request: HttpRequest, error: ApplicationError) -> None:
    messages.error(request, error.message)
