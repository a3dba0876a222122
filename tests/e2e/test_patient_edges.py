"""Patient-facing edges in a real browser: the preference link from a marketing footer is not enough
to lower a patient's protection; the code sent to the mailbox is, and the patient gets a
confirmation with a one-click undo. A link inside a portal message opens."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from consent import links, services
from consent.gate import may_send
from delivery.outbox import RenderedContent
from delivery.portal.services import portal_deliver
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.consent.conftest import new_contact
from tests.delivery.outbox_helpers import make_message
from tests.delivery.patient_mail import patient_mail, patient_sender
from tests.factories import BaaFactory, TenantFactory

from .conftest import screenshot, unique

pytestmark = pytest.mark.browser


def _path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def _unencrypted(contact) -> bool:
    return may_send(contact=contact, purpose="treatment", uses_phi=True).unencrypted_allowed


@pytest.fixture
def footer_link(committed):
    slug = unique("clinic")
    tenant = TenantFactory(name=f"Clinic {slug[-10:]}", slug=slug)
    BaaFactory(tenant=tenant)
    services.consent_settings_update(
        tenant=tenant,
        actor=Actor.system("tests"),
        operating_states=[],
        state_mode="strictest",
        allow_unencrypted_waivers=True,
        reminder_days_before_expiry=30,
    )
    patient_sender(tenant)  # codes and confirmations leave from the tenant's verified domain
    contact = new_contact(tenant, email=f"{unique('patient')}@patients.example")
    return contact, _path(links.preferences_url(contact=contact))


def _ask_for_unencrypted_email(page, path: str) -> None:
    page.goto(path)
    expect(page.get_by_role("heading", name="Email without encryption")).to_be_visible()
    page.get_by_role("checkbox", name="Treatment").check()
    page.get_by_label("I have read the explanation of the risk above.").check()
    page.get_by_role("button", name="Send these without encryption").click()
    expect(page.get_by_text("We sent a one-time code to your email address")).to_be_visible()


def test_a_stranger_with_the_footer_link_cannot_lower_protection(page, footer_link):
    contact, path = footer_link
    _ask_for_unencrypted_email(page, path)
    # The code went to the patient's mailbox; the stranger can only guess.
    (code_mail,) = patient_mail(to=contact.email)
    page.get_by_label("One-time code").fill("000000" if "000000" not in code_mail.body else "111111")
    page.get_by_role("button", name="Confirm with the code").click()
    expect(page.get_by_role("alert")).to_contain_text("not correct")
    screenshot(page, "waiver-stranger-refused")
    assert not _unencrypted(contact)


def test_the_patient_confirms_with_the_code_and_undoes_from_the_confirmation(page, footer_link):
    contact, path = footer_link
    _ask_for_unencrypted_email(page, path)
    code = re.search(r"\b(\d{6})\b", patient_mail(to=contact.email)[-1].body).group(1)
    page.get_by_label("One-time code").fill(code)
    page.get_by_role("button", name="Confirm with the code").click()
    expect(page.get_by_text("We sent a confirmation to your email address")).to_be_visible()
    expect(page.get_by_role("button", name="Withdraw my request")).to_be_visible()
    assert _unencrypted(contact)

    confirmation = patient_mail(to=contact.email)[-1]
    undo = re.search(r"https?://\S+/p/undo/\S+/", confirmation.body).group(0)
    page.goto(_path(undo))
    screenshot(page, "waiver-undo")
    page.get_by_role("button", name="Undo: protect my email again").click()
    expect(page.get_by_role("status")).to_contain_text("protected again")
    assert not _unencrypted(contact)


def test_a_link_in_a_portal_message_opens_in_a_new_tab(page, live_server_url, committed):
    # Our own sign-in page refuses to be framed (X-Frame-Options: DENY): the hardest case for a link.
    html = f'<p>Please <a href="{live_server_url}/login/?next=/">sign in to book a visit</a>.</p>'
    slug = unique("clinic")
    tenant = TenantFactory(name=f"Clinic {slug[-10:]}", slug=slug)
    BaaFactory(tenant=tenant)
    patient_sender(tenant)
    address = f"{unique('patient')}@patients.example"
    message = make_message(tenant, address=address)
    with tenant_context(tenant):
        notice = portal_deliver(message, RenderedContent(subject="Your visit", html=html, text="Sign in."))
    page.goto(_path(notice.portal_url))
    page.get_by_role("button", name="Send me a code").click()
    code = re.search(r"\b(\d{6})\b", patient_mail(to=address)[-1].body).group(1)
    page.get_by_role("textbox", name=re.compile(r"^One-time code")).fill(code)
    page.get_by_role("button", name="Confirm and read").click()
    expect(page.get_by_role("heading", name="Your visit")).to_be_visible()

    with page.context.expect_page() as opened:
        page.frame_locator("iframe[title=Message]").get_by_role(
            "link", name="sign in to book a visit"
        ).click()
    tab = opened.value
    tab.wait_for_load_state()
    expect(tab).to_have_url(re.compile(r"/login/\?next=/$"))
    expect(tab.get_by_label("Email")).to_be_visible()
    screenshot(tab, "portal-link-opened")
    tab.close()


def test_staff_record_a_phone_waiver_and_the_patient_is_told_from_the_clinic_domain(page, make_person):
    from django.urls import reverse

    from healthmail.accounts.roles import Role

    from .conftest import browser_sign_in

    officer = make_person(Role.COMPLIANCE_OFFICER)
    services.consent_settings_update(
        tenant=officer.tenant,
        actor=Actor.system("tests"),
        operating_states=[],
        state_mode="strictest",
        allow_unencrypted_waivers=True,
        reminder_days_before_expiry=30,
    )
    contact = new_contact(officer.tenant, email=f"{unique('patient')}@patients.example")
    browser_sign_in(page, officer)

    def record() -> None:
        page.goto(reverse("consent:contact_consent", args=[contact.pk]))
        form = page.locator("section", has=page.get_by_role("heading", name="Record a waiver of encryption"))
        form.get_by_role("checkbox", name="Treatment", exact=True).check()
        form.locator("select[name=source]").select_option(label="Verbal")
        form.get_by_label("The patient was given the current risk explanation.").check()
        form.get_by_role("button", name="Record waiver").click()

    # Without a verified sender domain the patient could never hear of it: refused, and said why.
    record()
    expect(page.get_by_text("no verified sender domain")).to_be_visible()
    assert not _unencrypted(contact)
    assert patient_mail(to=contact.email) == []

    sender_domain = patient_sender(officer.tenant)
    record()
    expect(page.get_by_text("The waiver is recorded.")).to_be_visible()
    screenshot(page, "waiver-recorded-by-staff")
    assert _unencrypted(contact)
    (confirmation,) = patient_mail(to=contact.email)
    assert confirmation.from_domain == sender_domain.domain
    assert "/p/undo/" in confirmation.body
