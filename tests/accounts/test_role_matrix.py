"""The permission matrix, written out by hand: a change to roles.PERMISSIONS must change this table."""

import pytest

from healthmail.accounts.roles import PERMISSIONS, role_can

ROLES = ("platform_admin", "tenant_admin", "marketer", "compliance_officer", "clinical_reviewer")
Y, N = True, False

# permission                           platform  t.admin  marketer  compliance  clinical
EXPECTED = {
    "platform.manage_tenants":          (Y,       N,       N,        N,          N),
    "platform.manage_baas":             (Y,       N,       N,        N,          N),
    "tenant.manage_users":              (N,       Y,       N,        N,          N),
    "tenant.manage_api_keys":           (N,       Y,       N,        N,          N),
    "tenant.manage_settings":           (N,       Y,       N,        N,          N),
    "tenant.manage_sender_domains":     (N,       Y,       N,        N,          N),
    "tenant.view_baa":                  (N,       Y,       N,        Y,          N),
    "contacts.view_masked":             (N,       Y,       Y,        Y,          Y),
    "contacts.view_phi":                (N,       N,       N,        Y,          N),
    "contacts.unmask":                  (N,       Y,       N,        N,          N),
    "contacts.import":                  (N,       Y,       Y,        N,          N),
    "contacts.export_phi":              (N,       N,       N,        Y,          N),
    "segments.edit":                    (N,       Y,       Y,        N,          N),
    "segments.edit_json":               (N,       Y,       N,        N,          N),
    "templates.edit":                   (N,       N,       Y,        N,          N),
    "campaigns.edit":                   (N,       N,       Y,        N,          N),
    "campaigns.approve_compliance":     (N,       N,       N,        Y,          N),
    "campaigns.approve_clinical":       (N,       N,       N,        N,          Y),
    "journeys.edit":                    (N,       N,       Y,        N,          N),
    "journeys.approve":                 (N,       N,       N,        Y,          N),
    "reports.view":                     (N,       Y,       Y,        Y,          N),
    "consent.manage":                   (N,       Y,       N,        Y,          N),
    "consent.view_reports":             (N,       N,       Y,        Y,          N),
    "audit.view":                       (N,       N,       N,        Y,          N),
    "retention.manage":                 (N,       N,       N,        Y,          N),
    "legal_holds.manage":               (N,       N,       N,        Y,          N),
    "break_glass.open":                 (N,       N,       N,        Y,          Y),
    "incidents.manage":                 (N,       N,       N,        Y,          N),
    "access_requests.review_denials":   (N,       N,       N,        N,          Y),
    "access_reviews.perform":           (N,       Y,       N,        N,          N),
    "access_reviews.view":              (N,       Y,       N,        Y,          N),
    "policies.manage":                  (N,       Y,       N,        N,          N),
    "policies.view_acknowledgements":   (N,       Y,       N,        Y,          N),
    "delivery.view_progress":           (N,       Y,       Y,        Y,          N),
    "delivery.search":                  (N,       Y,       N,        Y,          N),
    "delivery.view_evidence":           (N,       Y,       N,        Y,          N),
}  # fmt: skip


def test_the_table_lists_every_permission_and_no_other():
    assert set(EXPECTED) == set(PERMISSIONS)


@pytest.mark.parametrize(
    ("permission", "role", "allowed"),
    [
        (permission, role, row[index])
        for permission, row in EXPECTED.items()
        for index, role in enumerate(ROLES)
    ],
)
def test_role_can(permission, role, allowed):
    assert role_can(role, permission) is allowed


@pytest.mark.parametrize("role", [*ROLES, None, "", "superuser"])
def test_unknown_permission_is_refused(role):
    assert role_can(role, "platform.manage_tenant") is False  # a typo fails closed


@pytest.mark.parametrize("permission", sorted(EXPECTED))
def test_no_role_and_unknown_role_hold_nothing(permission):
    assert role_can(None, permission) is False
    assert role_can("owner", permission) is False
