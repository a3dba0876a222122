"""Roles and the one permission matrix. Views, API and services ask `role_can(role, permission)`.

Platform admins are not tenant members: they hold only the platform permissions and see no PHI.
"""

from django.db import models


class Role(models.TextChoices):
    TENANT_ADMIN = "tenant_admin", "Tenant admin"
    MARKETER = "marketer", "Marketer"
    COMPLIANCE_OFFICER = "compliance_officer", "Compliance officer"
    CLINICAL_REVIEWER = "clinical_reviewer", "Clinical reviewer"


PLATFORM_ADMIN = "platform_admin"

_ADMIN, _MARKETER, _COMPLIANCE, _CLINICAL = (
    Role.TENANT_ADMIN,
    Role.MARKETER,
    Role.COMPLIANCE_OFFICER,
    Role.CLINICAL_REVIEWER,
)

PERMISSIONS: dict[str, frozenset[str]] = {
    # platform
    "platform.manage_tenants": frozenset({PLATFORM_ADMIN}),
    "platform.manage_baas": frozenset({PLATFORM_ADMIN}),
    # tenant administration
    "tenant.manage_users": frozenset({_ADMIN}),
    "tenant.manage_api_keys": frozenset({_ADMIN}),
    "tenant.manage_settings": frozenset({_ADMIN}),
    "tenant.manage_sender_domains": frozenset({_ADMIN}),
    "tenant.view_baa": frozenset({_ADMIN, _COMPLIANCE}),
    # contacts and PHI
    "contacts.view_masked": frozenset({_ADMIN, _MARKETER, _COMPLIANCE, _CLINICAL}),
    # Unmasked by default: compliance officers only. Tenant admins see masked PHI like everyone else
    # and may unmask one contact at a time for a recorded reason (contacts.unmask, audited).
    "contacts.view_phi": frozenset({_COMPLIANCE}),
    "contacts.unmask": frozenset({_ADMIN}),
    "contacts.import": frozenset({_ADMIN, _MARKETER}),
    "contacts.export_phi": frozenset({_COMPLIANCE}),
    # marketing work
    "segments.edit": frozenset({_ADMIN, _MARKETER}),
    # the definition as JSON, as API users write it; marketers build with the rule rows
    "segments.edit_json": frozenset({_ADMIN}),
    "templates.edit": frozenset({_MARKETER}),
    "campaigns.edit": frozenset({_MARKETER}),
    "campaigns.approve_compliance": frozenset({_COMPLIANCE}),
    "campaigns.approve_clinical": frozenset({_CLINICAL}),
    "journeys.edit": frozenset({_MARKETER}),
    "journeys.approve": frozenset({_COMPLIANCE}),
    "reports.view": frozenset({_ADMIN, _MARKETER, _COMPLIANCE}),
    # consent (texts, suppression list, settings; reports)
    "consent.manage": frozenset({_ADMIN, _COMPLIANCE}),
    "consent.view_reports": frozenset({_MARKETER, _COMPLIANCE}),
    # compliance
    "audit.view": frozenset({_COMPLIANCE}),
    "retention.manage": frozenset({_COMPLIANCE}),
    "legal_holds.manage": frozenset({_COMPLIANCE}),
    "break_glass.open": frozenset({_COMPLIANCE, _CLINICAL}),
    "incidents.manage": frozenset({_COMPLIANCE}),
    # 164.524(a)(4): a licensed health care professional reviews a denial of access
    "access_requests.review_denials": frozenset({_CLINICAL}),
    # oversight: admins review who has which role and publish policies; compliance sees the evidence
    "access_reviews.perform": frozenset({_ADMIN}),
    "access_reviews.view": frozenset({_ADMIN, _COMPLIANCE}),
    "policies.manage": frozenset({_ADMIN}),
    "policies.view_acknowledgements": frozenset({_ADMIN, _COMPLIANCE}),
    # delivery: sending progress (counts only), message search for support (masked address), and the
    # delivery evidence per message and per recipient domain (compliance)
    "delivery.view_progress": frozenset({_ADMIN, _MARKETER, _COMPLIANCE}),
    "delivery.search": frozenset({_ADMIN, _COMPLIANCE}),
    "delivery.view_evidence": frozenset({_ADMIN, _COMPLIANCE}),
}

HOME_TITLES = {
    PLATFORM_ADMIN: "Platform administration",
    Role.TENANT_ADMIN: "Organization administration",
    Role.MARKETER: "Marketing",
    Role.COMPLIANCE_OFFICER: "Compliance",
    Role.CLINICAL_REVIEWER: "Clinical review",
}


def role_can(role: str | None, permission: str) -> bool:
    """Unknown permissions are refused, so a typo fails closed."""
    return role is not None and role in PERMISSIONS.get(permission, frozenset())
