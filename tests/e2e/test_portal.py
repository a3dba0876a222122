"""The secure portal in a real browser: open the notice link, ask for a code, type it from the mail
the engine queued (from the tenant's verified domain), read the message, reply."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from delivery.models import PortalMessage, PortalReply
from delivery.outbox import message_content
from delivery.portal.services import portal_deliver
from healthmail.tenants.context import tenant_context
from tests.delivery.outbox_helpers import PHI_SUBJECT, make_message
from tests.delivery.patient_mail import patient_mail, patient_sender
from tests.e2e.conftest import screenshot, unique

pytestmark = pytest.mark.browser


@pytest.fixture
def portal_link(committed):
    from tests.factories import BaaFactory, TenantFactory

    slug = unique("clinic")
    tenant = TenantFactory(name=f"Clinic {slug[-10:]}", slug=slug)
    BaaFactory(tenant=tenant)
    patient_sender(tenant)
    message = make_message(tenant, address=f"{unique('patient')}@patients.example")
    with tenant_context(tenant):
        notice = portal_deliver(message, message_content(message))
    path = "/" + notice.portal_url.split("://", 1)[1].split("/", 1)[1]
    return tenant, message, path


def test_recipient_verifies_reads_and_replies(page, portal_link):
    tenant, message, path = portal_link
    page.goto(path)
    expect(page.get_by_role("heading", name="You have a secure message")).to_be_visible()
    expect(page.get_by_text(PHI_SUBJECT)).to_have_count(0)
    screenshot(page, "portal-verify")

    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_text("We sent a one-time code")).to_be_visible()
    (code_mail,) = patient_mail(to=message.to_address)
    assert code_mail.from_domain == patient_sender(tenant).domain
    code = re.search(r"\b(\d{6})\b", code_mail.body).group(1)
    page.get_by_role("textbox", name=re.compile(r"^One-time code")).fill(code)
    page.get_by_role("button", name="Confirm and read").click()

    expect(page.get_by_role("heading", name=PHI_SUBJECT)).to_be_visible()
    expect(page.frame_locator("iframe[title=Message]").get_by_text("HbA1c is 9.7%")).to_be_visible()
    screenshot(page, "portal-message")

    page.get_by_role("textbox", name=re.compile(r"^Your reply")).fill("Thank you, can we talk on Monday?")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_text("Your reply was sent securely")).to_be_visible()

    with tenant_context(tenant):
        portal_message = PortalMessage.objects.get(message_id=message.pk)
        assert portal_message.read_count >= 1
        assert PortalReply.objects.filter(portal_message=portal_message).count() == 1


def test_wrong_code_is_refused_in_the_browser(page, portal_link):
    _, _, path = portal_link
    page.goto(path)
    page.get_by_role("button", name="Send me a code").click()
    page.get_by_role("textbox", name=re.compile(r"^One-time code")).fill("12345x")
    page.get_by_role("button", name="Confirm and read").click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile("not correct|expired"))
    expect(page.get_by_text(PHI_SUBJECT)).to_have_count(0)
