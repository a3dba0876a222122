"""Tenants choose who reviews their audit trail and how long it is kept (never under six years)."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from audit.policy import audit_policy, audit_policy_update, may_review_audit
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context

pytestmark = pytest.mark.django_db


def test_compliance_officers_review_by_default_and_others_only_when_named(tenant_a, tenant_b):
    assert may_review_audit(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER)
    assert not may_review_audit(tenant=tenant_a, role=Role.TENANT_ADMIN)
    audit_policy_update(
        actor=Actor.system("t"), tenant=tenant_a, reviewer_roles=[Role.TENANT_ADMIN], retention_years=7
    )
    assert may_review_audit(tenant=tenant_a, role=Role.TENANT_ADMIN)
    assert not may_review_audit(tenant=tenant_b, role=Role.TENANT_ADMIN)
    assert not may_review_audit(tenant=tenant_a, role="platform_admin")


def test_retention_below_the_legal_minimum_is_refused(tenant_a):
    with pytest.raises(ApplicationError, match="at least 6 years"):
        audit_policy_update(actor=Actor.system("t"), tenant=tenant_a, reviewer_roles=[], retention_years=5)
    assert audit_policy(tenant=tenant_a).retention_years == 6


def test_officer_names_tenant_admins_as_reviewers_in_the_ui(member_client, tenant_a, client):
    officer = member_client(Role.COMPLIANCE_OFFICER)
    response = officer.post(
        reverse("audit:settings"), {"reviewer_roles": [Role.TENANT_ADMIN], "retention_years": 8}
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        assert AuditEvent.objects.filter(tenant=tenant_a, action="audit.policy_change").exists()
    admin = member_client(Role.TENANT_ADMIN)
    assert admin.get(reverse("audit:event_list")).status_code == 200
    assert admin.get(reverse("audit:settings")).status_code == 403  # naming reviewers stays with officers


def test_ui_refuses_a_short_retention(member_client):
    officer = member_client(Role.COMPLIANCE_OFFICER)
    response = officer.post(reverse("audit:settings"), {"retention_years": 2})
    assert response.status_code == 400
    assert "at least 6 years" in response.content.decode()
