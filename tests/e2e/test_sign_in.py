"""Real sign-ins in Chromium: password + a TOTP code from the device key, for every role; first-time
enrolment; a tenant admin inviting someone who then joins."""

import re
from base64 import b32decode

import pytest
from django.core import mail
from django_otp.oath import TOTP
from playwright.sync_api import expect

from healthmail.accounts.roles import HOME_TITLES, PLATFORM_ADMIN, Role
from tests.factories import PASSWORD
from tests.sysmail.outbox import deliver_system_mail

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def _password_step(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()


def _sign_in(page, person) -> None:
    browser_sign_in(page, person)


@pytest.mark.parametrize("role", [PLATFORM_ADMIN, *Role.values])
def test_each_role_signs_in_with_totp_and_reaches_its_home(page, make_person, role):
    if role == PLATFORM_ADMIN:
        person = make_person(None, platform_admin=True)
    else:
        person = make_person(role)
    _sign_in(page, person)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(HOME_TITLES[role])
    screenshot(page, f"home-{role}")
    if role == PLATFORM_ADMIN:
        expect(page.get_by_role("link", name="Tenants").first).to_be_visible()
    else:
        expect(page.get_by_text(person.tenant.name).first).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_text("You are signed out.")).to_be_visible()


def test_first_sign_in_enrols_an_authenticator(page, make_person):
    person = make_person(Role.MARKETER, enrolled=False)
    _password_step(page, person.email)
    expect(page).to_have_url(re.compile(r"/mfa/setup/$"))
    expect(
        page.get_by_role("img", name="QR code to add HealthMail to your authenticator app")
    ).to_be_visible()
    screenshot(page, "mfa-setup")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code from your app").fill(f"{TOTP(b32decode(secret)).token():06d}")
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Your backup codes")
    codes = page.get_by_role("list", name="Backup codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    screenshot(page, "backup-codes")
    page.get_by_role("link", name=re.compile("continue")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(HOME_TITLES[Role.MARKETER])


def test_tenant_admin_invites_a_user_who_joins(page, browser, live_server_url, make_person):
    admin = make_person(Role.TENANT_ADMIN)
    _sign_in(page, admin)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Users of {admin.tenant.name}")
    page.get_by_role("link", name="Invite a user").click()
    newcomer = admin.email.replace("person", "newcomer")
    page.get_by_label("Email").fill(newcomer)
    page.get_by_label("Role").select_option(label="Clinical reviewer")
    page.get_by_role("button", name="Send invitation").click()

    expect(page.get_by_text(f"{newcomer} was added. The invitation email is queued")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=newcomer)
    expect(row).to_contain_text("Clinical reviewer")
    expect(row).to_contain_text("Invited")
    screenshot(page, "member-invited")

    assert deliver_system_mail(admin.tenant) == ["sent"]
    invitation = next(m for m in mail.outbox if m.to == [newcomer])
    link = re.search(r"https?://\S+(/invite/\S+/)", invitation.body).group(1)
    context = browser.new_context(base_url=live_server_url)
    joiner = context.new_page()
    try:
        joiner.goto(link)
        expect(joiner.get_by_role("heading", level=1)).to_have_text("Choose your password")
        joiner.get_by_label("New password").fill(PASSWORD)
        joiner.get_by_label("Repeat the password").fill(PASSWORD)
        joiner.get_by_role("button", name="Set password").click()
        expect(joiner.get_by_text("Your password is set.")).to_be_visible()
        _password_step(joiner, newcomer)
        expect(joiner).to_have_url(re.compile(r"/mfa/setup/$"))
    finally:
        context.close()
