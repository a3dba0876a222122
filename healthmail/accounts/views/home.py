"""The home page each role lands on, and the tenant switcher."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from healthmail.accounts import services
from healthmail.accounts.middleware import SESSION_TENANT
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import HOME_TITLES, PLATFORM_ADMIN, Role
from healthmail.errors import NotFound

from .access import actor_of


@dataclass(frozen=True)
class Task:
    label: str
    url_name: str
    description: str

    def url(self) -> str:
        """Pages other teams have not built yet show as plain text, never as a broken link."""
        try:
            return reverse(self.url_name)
        except NoReverseMatch:
            return ""


ROLE_TASKS: dict[str, list[Task]] = {
    PLATFORM_ADMIN: [
        Task(
            "Tenants",
            "tenants:tenant_list",
            "Create organizations, record their BAAs, suspend or reactivate.",
        ),
    ],
    Role.TENANT_ADMIN: [
        Task("Users", "accounts:member_list", "Invite people, set their roles, reset lost authenticators."),
        Task("API keys", "accounts:api_key_list", "Issue scoped keys for your EHR or CRM; revoke old ones."),
        Task("Settings", "tenants:settings", "Postal address, time zone and session timeout."),
        Task("Contacts", "contacts:contact_list", "Look up patients; every view is audited."),
        Task("Contact fields", "contacts:custom_field_list", "Custom contact fields and their PHI class."),
        Task("Find a message", "sending:message_search", "Look up a message by id for a support request."),
    ],
    Role.MARKETER: [
        Task("Contacts", "contacts:contact_list", "Import patients and review masked contact lists."),
        Task("Segments", "segmentation:segment_list", "Build audiences and check their size."),
        Task("Campaigns", "campaigns:campaign_list", "Write templates, then send campaigns for approval."),
        Task("Sending", "sending:source_list", "Follow campaigns as they send: delivered, waiting, bounced."),
    ],
    Role.COMPLIANCE_OFFICER: [
        Task("Contacts", "contacts:contact_list", "Look up patients; every view is audited."),
        Task("Approvals", "campaigns:approval_list", "Review campaigns waiting for compliance approval."),
        Task("Audit trail", "audit:event_list", "Search who did what, verify the chain, export it."),
        Task("Security alerts", "audit:alert_list", "Failed sign-ins, mass exports, break-glass use."),
        Task("Consent", "consent:reports", "Opt-ins by topic, authorizations ending soon, suppressions."),
        Task("Recipient domains", "sending:domain_table", "TLS per recipient domain; evidence per message."),
        Task(
            "Retention and legal holds",
            "retention:policy_list",
            "Keep records exactly as long as policy says.",
        ),
    ],
    Role.CLINICAL_REVIEWER: [
        Task("Approvals", "campaigns:approval_list", "Check PHI use in campaigns (minimum necessary)."),
        Task("Break-glass access", "audit:break_glass_list", "Emergency access to a record, time-limited."),
    ],
}


def home(request: TenantRequest) -> HttpResponse:
    role = request.role
    if role is None:
        return render(request, "accounts/no_membership.html", status=403)
    context = {"title": HOME_TITLES[role], "tasks": ROLE_TASKS.get(role, [])}
    return render(request, "accounts/home.html", context)


@require_POST
def switch_tenant(request: TenantRequest) -> HttpResponse:
    try:
        membership = services.tenant_switch(
            actor=actor_of(request), user=request.user, tenant_id=request.POST.get("tenant", "")
        )
    except NotFound as error:
        raise Http404(error.message) from error
    request.session[SESSION_TENANT] = str(membership.tenant_id)
    messages.success(request, f"You are now working in {membership.tenant.name}.")
    return redirect("accounts:home")
