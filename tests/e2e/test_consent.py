"""A patient on a phone signs a marketing authorization from a link, then revokes it in the preference
center. No login: the signed link is the only key."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from consent import links
from consent.gate import may_send
from consent.models import Authorization
from healthmail.tenants.context import tenant_context
from tests.consent.conftest import new_contact, new_text
from tests.factories import BaaFactory, TenantFactory

from .conftest import screenshot, unique

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def _fits_the_screen(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_patient_signs_on_a_phone_then_revokes_in_the_preference_center(browser, live_server_url, committed):
    slug = unique("clinic")
    tenant = TenantFactory(name=f"Clinic {slug[-10:]}", slug=slug)
    BaaFactory(tenant=tenant)
    contact = new_contact(tenant)
    text = new_text(tenant)
    path = re.sub(r"^https?://[^/]+", "", links.authorize_url(contact=contact, text=text))

    context = browser.new_context(base_url=live_server_url, viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_have_text("Please read and sign")
        expect(page.get_by_role("banner")).to_contain_text(tenant.name)
        expect(page.get_by_role("heading", name="Your right to revoke")).to_be_visible()
        assert _fits_the_screen(page)
        screenshot(page, "consent-authorize-phone")

        page.get_by_label("Type your full name as your signature").fill("Pat Example")
        page.get_by_label("I have read this authorization and I sign it electronically.").check()
        page.get_by_role("button", name="Sign authorization").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Thank you: your authorization is signed")
        screenshot(page, "consent-signed-phone")
        with tenant_context(tenant):
            authorization = Authorization.objects.get(contact=contact)
        assert authorization.status == "valid"
        assert may_send(contact=contact, purpose="treatment", uses_phi=True).allowed

        page.get_by_role("link", name="email preferences").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Your email preferences")
        assert _fits_the_screen(page)
        page.get_by_role("button", name=f"Revoke authorization: {text.title}").click()
        expect(page.get_by_role("status")).to_contain_text("Your authorization is revoked")
        expect(page.get_by_text("No authorization is in force.")).to_be_visible()
        screenshot(page, "consent-revoked-phone")
        with tenant_context(tenant):
            authorization.refresh_from_db(fields=["status", "revoked_via"])
        assert (authorization.status, authorization.revoked_via) == ("revoked", "web_form")
    finally:
        context.close()


def test_a_forged_link_shows_a_friendly_page(browser, live_server_url, committed):
    context = browser.new_context(base_url=live_server_url, viewport=PHONE)
    page = context.new_page()
    try:
        response = page.goto("/p/preferences/not-a-real-token/")
        assert response.status == 400
        expect(page.get_by_role("alert")).to_contain_text("This link is not valid")
    finally:
        context.close()
