"""Tenant-admin pages for people: who may use them, foreign ids, invitations, roles, deactivation,
MFA reset."""

import re
import uuid

import pytest
from django.core import mail
from django.test import Client
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from healthmail.accounts import signin
from healthmail.accounts.membership import memberships_of
from healthmail.accounts.models import Membership, User
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.conftest import sign_in
from tests.factories import PASSWORD, MembershipFactory, UserFactory, confirmed_totp
from tests.sysmail.outbox import deliver_system_mail

from .conftest import events

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(member_client):
    return member_client(Role.TENANT_ADMIN)


@pytest.fixture
def colleague(tenant_a):
    membership = MembershipFactory(tenant=tenant_a, role=Role.MARKETER)
    confirmed_totp(membership.user)
    return membership


def _reload(membership) -> Membership:
    with tenant_context(membership.tenant_id):
        return Membership.objects.get(pk=membership.pk)


def _pages(membership_id) -> list[tuple[str, str, dict]]:
    return [
        ("get", "/members/", {}),
        ("get", "/members/invite/", {}),
        ("post", "/members/invite/", {"email": "new@staff.example.org", "role": "marketer"}),
        ("get", f"/members/{membership_id}/", {}),
        ("post", f"/members/{membership_id}/role/", {"role": "tenant_admin"}),
        ("post", f"/members/{membership_id}/deactivate/", {}),
        ("post", f"/members/{membership_id}/reactivate/", {}),
        ("post", f"/members/{membership_id}/mfa-reset/", {"reset-reason": "ticket 1"}),
        ("post", f"/members/{membership_id}/resend-invitation/", {}),
    ]


@pytest.mark.parametrize("role", [Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER])
def test_other_roles_are_refused(member_client, colleague, tenant_a, role):
    client = member_client(role)
    for method, path, data in _pages(colleague.pk):
        response = getattr(client, method)(path, data)
        assert response.status_code == 403, (role, path)
    assert _reload(colleague).role == Role.MARKETER
    assert _reload(colleague).is_active
    assert TOTPDevice.objects.filter(user=colleague.user).exists()
    assert not User.objects.filter(username="new@staff.example.org").exists()
    assert len(events("authz.denied", tenant=tenant_a)) == len(_pages(colleague.pk))


def test_platform_admin_is_refused(platform_admin_client, colleague):
    for method, path, data in _pages(colleague.pk):
        assert getattr(platform_admin_client, method)(path, data).status_code == 403, path


def test_foreign_tenant_member_is_not_found(admin_client, tenant_b):
    foreign = MembershipFactory(tenant=tenant_b, role=Role.TENANT_ADMIN)
    confirmed_totp(foreign.user)
    for method, path, data in _pages(foreign.pk)[3:]:
        assert getattr(admin_client, method)(path, data).status_code == 404, path
    for method, path, data in _pages(uuid.uuid4())[3:]:
        assert getattr(admin_client, method)(path, data).status_code == 404, path
    foreign = _reload(foreign)
    assert (foreign.role, foreign.is_active) == (Role.TENANT_ADMIN, True)
    assert TOTPDevice.objects.filter(user=foreign.user).exists()


def test_member_list_shows_role_status_and_mfa(admin_client, colleague, tenant_a):
    invited = MembershipFactory(tenant=tenant_a, role=Role.CLINICAL_REVIEWER)
    response = admin_client.get("/members/")
    html = response.content.decode()
    assert response.status_code == 200
    rows = {
        email: row
        for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)
        for email in re.findall(r"[\w.]+@staff\.example\.org", row)
    }
    assert "Marketer" in rows[colleague.user.email]
    assert "Enrolled" in rows[colleague.user.email]
    assert "Not enrolled" in rows[invited.user.email]
    assert "Active" in rows[invited.user.email]


def test_invite_creates_account_membership_and_a_working_link(
    admin_client, tenant_a, fresh_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/members/invite/", {"email": "New.Person@Staff.example.org", "role": Role.COMPLIANCE_OFFICER}
        )
    assert response.url == "/members/"
    user = User.objects.get(username="new.person@staff.example.org")
    assert not user.has_usable_password()
    with tenant_context(tenant_a):
        membership = Membership.objects.get(user=user)
    assert membership.role == Role.COMPLIANCE_OFFICER
    assert membership.invited_by == admin_client.membership.user
    assert len(events("member.invite", tenant=tenant_a)) == 1

    assert deliver_system_mail(tenant_a) == ["sent"]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.person@staff.example.org"]
    link = re.search(r"https?://\S+/invite/\S+/", mail.outbox[0].body).group(0)
    path = link[link.index("/invite/") :]

    visitor = fresh_client()
    assert visitor.get(path).status_code == 200
    weak = visitor.post(path, {"password": "short", "confirm": "short"})
    assert weak.status_code == 400
    assert visitor.post(path, {"password": PASSWORD, "confirm": PASSWORD}).url == "/login/"
    assert visitor.get(path).status_code == 400  # used once
    response = visitor.post("/login/", {"email": "new.person@staff.example.org", "password": PASSWORD})
    assert response.url == "/mfa/setup/"  # enrolment comes next


def test_invite_of_an_existing_member_is_refused(admin_client, colleague):
    response = admin_client.post("/members/invite/", {"email": colleague.user.email, "role": "marketer"})
    assert response.status_code == 409
    assert "already a member" in response.content.decode()


def test_inviting_an_existing_account_sends_a_sign_in_note_without_a_link(
    admin_client, tenant_b, django_capture_on_commit_callbacks
):
    elsewhere = MembershipFactory(tenant=tenant_b, role=Role.MARKETER)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/members/invite/", {"email": elsewhere.user.email, "role": "marketer"})
    assert response.status_code == 302
    deliver_system_mail(admin_client.membership.tenant)
    assert "/invite/" not in mail.outbox[0].body
    assert "existing password" in mail.outbox[0].body
    assert elsewhere.user.check_password(PASSWORD)


def test_platform_admin_account_cannot_be_invited(admin_client):
    root = UserFactory(is_platform_admin=True)
    response = admin_client.post("/members/invite/", {"email": root.email, "role": "marketer"})
    assert response.status_code == 400
    assert memberships_of(root) == []


def test_invite_link_tampered_is_refused(client, colleague):
    assert client.get("/invite/AAAA/abc-123/").status_code == 400


def test_change_role(admin_client, colleague, tenant_a):
    response = admin_client.post(f"/members/{colleague.pk}/role/", {"role": Role.CLINICAL_REVIEWER})
    assert response.status_code == 302
    assert _reload(colleague).role == Role.CLINICAL_REVIEWER
    event = events("member.role_change", tenant=tenant_a)[0]
    assert event.details["from"] == "marketer"
    assert event.details["to"] == "clinical_reviewer"


def test_last_admin_cannot_demote_or_deactivate_themself(admin_client, tenant_a):
    me = admin_client.membership
    response = admin_client.post(f"/members/{me.pk}/role/", {"role": Role.MARKETER})
    assert response.status_code == 409
    assert "You are the last active tenant admin" in response.content.decode()
    response = admin_client.post(f"/members/{me.pk}/deactivate/", {})
    assert response.status_code == 409
    me = _reload(me)
    assert (me.role, me.is_active) == (Role.TENANT_ADMIN, True)


def test_admin_may_step_down_when_another_admin_remains(admin_client, tenant_a):
    MembershipFactory(tenant=tenant_a, role=Role.TENANT_ADMIN)
    me = admin_client.membership
    assert admin_client.post(f"/members/{me.pk}/role/", {"role": Role.MARKETER}).status_code == 302
    assert _reload(me).role == Role.MARKETER
    assert admin_client.get("/members/").status_code == 403  # the new role applies at once


def test_deactivated_member_is_refused_on_the_next_request(admin_client, colleague, tenant_a):
    member = Client()
    sign_in(member, colleague.user, tenant=tenant_a)
    assert member.get("/").status_code == 200
    response = admin_client.post(f"/members/{colleague.pk}/deactivate/", {"deactivate-reason": "left"})
    assert response.status_code == 302
    assert not _reload(colleague).is_active
    assert events("member.deactivate", tenant=tenant_a)[0].reason == "left"
    home = member.get("/")
    assert home.status_code == 403
    assert "not a member of any organization" in home.content.decode()

    admin_client.post(f"/members/{colleague.pk}/reactivate/")
    assert _reload(colleague).is_active
    assert member.get("/").status_code == 200


def test_mfa_reset_forces_reenrolment(admin_client, colleague, tenant_a):
    signin.backup_codes_generate(actor=Actor.system("test"), user=colleague.user)
    member = Client()
    sign_in(member, colleague.user, tenant=tenant_a)
    assert member.get("/").status_code == 200

    refused = admin_client.post(f"/members/{colleague.pk}/mfa-reset/", {"reset-reason": ""})
    assert refused.status_code == 400
    assert TOTPDevice.objects.filter(user=colleague.user).exists()

    response = admin_client.post(f"/members/{colleague.pk}/mfa-reset/", {"reset-reason": "lost phone, #4411"})
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=colleague.user).exists()
    assert not StaticDevice.objects.filter(user=colleague.user).exists()
    assert events("mfa.reset", tenant=tenant_a)[0].reason == "lost phone, #4411"

    assert member.get("/").url == "/mfa/verify/"  # the running session is no longer verified
    assert member.get("/mfa/verify/").url == "/mfa/setup/"


def test_admin_cannot_reset_own_mfa(admin_client):
    me = admin_client.membership
    response = admin_client.post(f"/members/{me.pk}/mfa-reset/", {"reset-reason": "x"})
    assert response.status_code == 400
    assert TOTPDevice.objects.filter(user=me.user).exists()
