"""Organization settings: tenant admins edit; BAA gating is shown read-only."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

URL = "/settings/organization/"


def test_settings_url_name():
    assert reverse("tenants:settings") == URL


@pytest.mark.parametrize(
    ("role", "get_status", "post_status"),
    [
        (Role.TENANT_ADMIN, 200, 302),
        (Role.COMPLIANCE_OFFICER, 200, 403),
        (Role.MARKETER, 403, 403),
        (Role.CLINICAL_REVIEWER, 403, 403),
    ],
)
def test_role_matrix(member_client, tenant_a, role, get_status, post_status):
    client = member_client(role)
    assert client.get(URL).status_code == get_status
    data = {"postal_address": "2 Example Road", "timezone": "America/Denver", "idle_timeout_minutes": "30"}
    assert client.post(URL, data).status_code == post_status
    changed = Tenant.objects.get(pk=tenant_a.pk).timezone == "America/Denver"
    assert changed is (post_status == 302)


def test_platform_admin_has_no_organization_settings(platform_admin_client):
    assert platform_admin_client.get(URL).status_code == 403


def test_tenant_admin_saves_settings(member_client, tenant_a):
    client = member_client(Role.TENANT_ADMIN)
    response = client.post(
        URL,
        {
            "postal_address": "2 Example Road\nSpringfield",
            "timezone": "America/Denver",
            "idle_timeout_minutes": "30",
        },
    )
    assert response.status_code == 302
    tenant = Tenant.objects.get(pk=tenant_a.pk)
    assert (tenant.postal_address, tenant.timezone, tenant.idle_timeout_minutes) == (
        "2 Example Road\nSpringfield",
        "America/Denver",
        30,
    )
    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(action="tenant.settings_change")
    assert event.details == {"fields": ["postal_address", "timezone", "idle_timeout_minutes"]}
    assert event.actor_id == str(client.membership.user_id)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("timezone", "Mars/Olympus_Mons", "Unknown time zone"),
        ("idle_timeout_minutes", "0", "greater than or equal to 1"),
        ("idle_timeout_minutes", "61", "less than or equal to 60"),
        ("postal_address", "", "required"),
    ],
)
def test_bad_input_is_refused(member_client, tenant_a, field, value, error):
    client = member_client(Role.TENANT_ADMIN)
    data = {"postal_address": "2 Example Road", "timezone": "America/Denver", "idle_timeout_minutes": "30"}
    response = client.post(URL, {**data, field: value})
    assert response.status_code == 400
    assert error in " ".join(response.context["form"].errors[field])
    assert Tenant.objects.get(pk=tenant_a.pk).timezone == "America/New_York"


def test_tenant_without_baa_configures_but_sees_phi_refused(member_client):
    unsigned = TenantFactory(name="Synthetic Unsigned Clinic")
    client = member_client(Role.TENANT_ADMIN, tenant=unsigned)
    response = client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert "PHI flows refused: no BAA in force" in body
    assert [s.permit.allowed for s in response.context["statuses"]] == [False] * 4
    saved = client.post(
        URL, {"postal_address": "3 Example Road", "timezone": "UTC", "idle_timeout_minutes": "5"}
    )
    assert saved.status_code == 302
    assert Tenant.objects.get(pk=unsigned.pk).idle_timeout_minutes == 5


def test_covered_tenant_sees_services_allowed(member_client, tenant_a):
    response = member_client(Role.COMPLIANCE_OFFICER).get(URL)
    assert [s.permit.allowed for s in response.context["statuses"]] == [True] * 4
    assert response.context["may_edit"] is False
    assert "Save settings" not in response.content.decode()
