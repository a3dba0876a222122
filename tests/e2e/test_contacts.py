"""A marketer opens the contact list and sees masked contacts, searches one by email, opens it."""

import pytest
from playwright.sync_api import expect

from contacts.services import contact_upsert_many
from contacts.synthetic import synthetic_contact
from healthmail.accounts.roles import Role
from healthmail.actors import Actor

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def test_marketer_sees_masked_contacts_and_finds_one(page, make_person):
    marketer = make_person(Role.MARKETER)
    patients = [synthetic_contact(number, seed=77) for number in range(1, 6)]
    contact_upsert_many(tenant=marketer.tenant, actor=Actor.system("e2e"), inputs=patients, source="e2e")

    browser_sign_in(page, marketer)
    page.get_by_role("link", name="Contacts").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Contacts")
    rows = page.get_by_role("table", name="Contacts of").locator("tbody tr")
    expect(rows).to_have_count(5)
    expect(page.get_by_text("masked for your role")).to_be_visible()
    body = page.content()
    for patient in patients:
        assert patient.email not in body
        assert patient.last_name not in body
    expect(rows.first).to_contain_text("S*** P*** 0***")
    screenshot(page, "contacts-masked-list")

    page.get_by_label("Find a contact").fill(patients[2].email)
    page.get_by_role("button", name="Search").click()
    matches = page.get_by_role("table", name="Contacts matching your search").locator("tbody tr")
    expect(matches).to_have_count(1)
    assert patients[2].email not in page.url
    matches.first.get_by_role("link").click()
    expect(page.get_by_text("Clinical information is not shown to your role.")).to_be_visible()
    assert patients[2].email not in page.content()
    screenshot(page, "contacts-masked-detail")


def test_tenant_admin_sees_masked_details_and_unmasks_one_with_a_reason(page, make_person):
    admin = make_person(Role.TENANT_ADMIN)
    patient = synthetic_contact(1, seed=78)
    contact_upsert_many(tenant=admin.tenant, actor=Actor.system("e2e"), inputs=[patient], source="e2e")

    browser_sign_in(page, admin)
    page.get_by_role("link", name="Contacts").first.click()
    expect(page.get_by_text("masked for your role")).to_be_visible()
    assert patient.email not in page.content()
    page.get_by_role("table", name="Contacts of").locator("tbody tr").first.get_by_role("link").click()
    assert patient.email not in page.content()

    page.get_by_label("Reason for unmasking").fill("curious")  # not a reason: refused, still masked
    page.get_by_role("button", name="Unmask").click()
    expect(page.get_by_role("alert")).to_contain_text("at least 15 characters")
    assert patient.email not in page.content()
    page.get_by_label("Reason for unmasking").fill("Patient called to correct their mailing address")
    page.get_by_role("button", name="Unmask").click()
    expect(page.get_by_text("Unmasked for this page only")).to_be_visible()
    expect(page.get_by_text(patient.email)).to_be_visible()
    screenshot(page, "contacts-admin-unmasked")
    page.goto(page.url.replace("unmask/", ""))  # the contact page itself is masked again
    assert patient.email not in page.content()
