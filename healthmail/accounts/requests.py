"""The request our middleware has dressed, as views see it once the access decorators have let it in.

    def campaign_detail(request: TenantRequest, campaign_id: uuid.UUID) -> HttpResponse:
        campaign = campaign_get(tenant=request.tenant, campaign_id=campaign_id)

Only a type: at run time a view gets Django's HttpRequest with these attributes set by
healthmail.web.middleware (tenant, membership, role), healthmail.accounts.membership
(memberships), healthmail.observability (request_id) and django-htmx (htmx). `require_permission`
and its siblings guarantee a tenant and a role before the view runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

    from healthmail.accounts.models import ApiKey, Membership, User
    from healthmail.tenants.models import Tenant


class TenantRequest(HttpRequest):
    tenant: Tenant
    membership: Membership | None  # None for the platform admin
    memberships: list[Membership]
    role: str
    request_id: str
    htmx: HtmxDetails
    user: User
    # API paths: the key the middleware authenticated, or why it refused one
    api_key: ApiKey | None
    api_key_error: str


class SignedInRequest(HttpRequest):
    """A request on a path that needs a session (healthmail.accounts.middleware lets it through only
    signed in): a person, MFA-verified or not yet. The tenant middleware gives it a tenant only once
    the session passed MFA, so the sign-in pages (MFA, sign-out) see it as perhaps None."""

    user: User
    tenant: Tenant | None
