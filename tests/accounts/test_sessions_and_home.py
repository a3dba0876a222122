"""Session lifetime, the tenant switcher, suspended tenants and each role's home page."""

import re
import time
import uuid

import pytest
from django.conf import settings
from django.test import Client

from healthmail.accounts.roles import HOME_TITLES, Role
from healthmail.tenants.models import Tenant
from tests.conftest import sign_in
from tests.factories import MembershipFactory, TenantFactory, UserFactory

from .conftest import events

pytestmark = pytest.mark.django_db


def _h1(response) -> str:
    return re.search(r"<h1[^>]*>(.*?)</h1>", response.content.decode(), re.S).group(1).strip()


def _age_session(client, **seconds_ago):
    session = client.session
    for key, ago in seconds_ago.items():
        session[key] = int(time.time()) - ago
    session.save()


def test_idle_session_is_signed_out(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    _age_session(client, last_seen=tenant_a.idle_timeout_minutes * 60 + 5)
    response = client.get("/")
    assert response.status_code == 302
    assert response.url == "/login/"
    assert client.get("/").url.startswith("/login/")  # the session is gone, not just redirected once
    expiry = events("session.expire", tenant=None)
    assert len(expiry) == 1
    assert "without activity" in expiry[0].reason


def test_activity_within_the_tenant_idle_limit_keeps_the_session(member_client, tenant_a):
    Tenant.objects.filter(pk=tenant_a.pk).update(idle_timeout_minutes=30)
    client = member_client(Role.MARKETER)
    _age_session(client, last_seen=20 * 60)
    assert client.get("/").status_code == 200
    assert client.session["last_seen"] >= int(time.time()) - 5  # each request renews it


def test_session_ends_at_its_absolute_lifetime_despite_activity(member_client):
    client = member_client(Role.MARKETER)
    _age_session(client, auth_at=settings.SESSION_ABSOLUTE_LIFETIME_SECONDS + 5, last_seen=10)
    response = client.get("/")
    assert response.url == "/login/"
    assert "maximum length" in events("session.expire", tenant=None)[0].reason


def test_switch_to_own_membership(member_client, tenant_a, tenant_b):
    client = member_client(Role.MARKETER)
    MembershipFactory(tenant=tenant_b, user=client.membership.user, role=Role.COMPLIANCE_OFFICER)
    response = client.post("/switch-tenant/", {"tenant": str(tenant_b.pk)})
    assert response.url == "/"
    assert client.session["tenant_id"] == str(tenant_b.pk)
    home = client.get("/")
    assert _h1(home) == "Compliance"
    assert tenant_b.name in home.content.decode()
    assert len(events("tenant.switch", tenant=tenant_b)) == 1


@pytest.mark.parametrize("target", ["foreign", "deactivated", "unknown", "garbage"])
def test_switch_refused_outside_own_active_memberships(member_client, tenant_a, tenant_b, target):
    client = member_client(Role.MARKETER)
    if target == "deactivated":
        MembershipFactory(tenant=tenant_b, user=client.membership.user, is_active=False)
    requested = {
        "foreign": str(tenant_b.pk),
        "deactivated": str(tenant_b.pk),
        "unknown": str(uuid.uuid4()),
        "garbage": "x' OR 1=1",
    }[target]
    response = client.post("/switch-tenant/", {"tenant": requested})
    assert response.status_code == 404
    assert client.session["tenant_id"] == str(tenant_a.pk)
    assert len(events("tenant.switch", tenant=None, outcome="denied")) == 1


@pytest.mark.parametrize("role", list(Role))
def test_each_role_lands_on_its_home(member_client, role):
    client = member_client(role)
    response = client.get("/")
    assert response.status_code == 200
    assert _h1(response) == HOME_TITLES[role]
    links = re.findall(r'<h3[^>]*><a href="([^"]+)">', response.content.decode())
    if role == Role.TENANT_ADMIN:
        assert {"/members/", "/api-keys/"} <= set(links)
    for link in links:
        assert client.get(link).status_code == 200, link  # home links only to pages that exist


def test_platform_admin_home(platform_admin_client):
    response = platform_admin_client.get("/")
    assert _h1(response) == "Platform administration"
    assert 'href="/platform/tenants/"' in response.content.decode()


def test_verified_person_without_membership_is_told_so(client):
    sign_in(client, UserFactory())
    response = client.get("/")
    assert response.status_code == 403
    assert "You are not a member of any organization" in response.content.decode()
    assert client.get("/members/").status_code == 403


def test_suspended_tenant_is_refused_on_every_page_but_sign_out_and_switcher(
    member_client, tenant_a, tenant_b
):
    client = member_client(Role.TENANT_ADMIN)
    MembershipFactory(tenant=tenant_b, user=client.membership.user, role=Role.MARKETER)
    Tenant.objects.filter(pk=tenant_a.pk).update(status=Tenant.Status.SUSPENDED)
    for path in ("/", "/members/", "/api-keys/", f"/members/{client.membership.pk}/"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert f"{tenant_a.name} is suspended" in response.content.decode()
    assert len(events("tenant.access", tenant=tenant_a, outcome="denied")) == 4

    assert client.post("/switch-tenant/", {"tenant": str(tenant_b.pk)}).url == "/"
    assert _h1(client.get("/")) == "Marketing"


def test_member_of_suspended_tenant_can_sign_out(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    Tenant.objects.filter(pk=tenant_a.pk).update(status=Tenant.Status.SUSPENDED)
    assert client.post("/logout/").url == "/login/"
    assert client.get("/").url.startswith("/login/")


def test_another_tenant_stays_usable_while_one_is_suspended(tenant_a):
    other = TenantFactory()
    client = Client()
    membership = MembershipFactory(tenant=other, role=Role.MARKETER)
    sign_in(client, membership.user, tenant=other)
    Tenant.objects.filter(pk=tenant_a.pk).update(status=Tenant.Status.SUSPENDED)
    assert client.get("/").status_code == 200
