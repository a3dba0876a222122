"""A clinical reviewer finds the patient by MRN on the break-glass page and reads the record."""

import re

import pytest
from playwright.sync_api import expect

from contacts.services import ContactInput, contact_upsert_many
from healthmail.accounts.roles import Role
from healthmail.actors import Actor

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def test_reviewer_finds_the_patient_and_opens_break_glass(page, make_person):
    reviewer = make_person(Role.CLINICAL_REVIEWER)
    (patient,) = contact_upsert_many(
        tenant=reviewer.tenant,
        actor=Actor.system("e2e"),
        inputs=[ContactInput(email="e2e.emergency@example.org", external_ids={"mrn": "MRN-ER-7"})],
        source="e2e",
    )

    browser_sign_in(page, reviewer)
    page.goto("/audit/break-glass/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Break-glass access")
    page.get_by_label("Kind of record").select_option("contacts.contact")
    page.get_by_label("Find the patient").fill("MRN-NOBODY")
    page.get_by_label(re.compile("^Reason")).fill("Patient unconscious in the emergency room")
    page.get_by_role("button", name="Open access").click()
    expect(page.get_by_text("No contact has exactly this")).to_be_visible()

    page.get_by_label("Find the patient").fill("MRN-ER-7")
    page.get_by_role("button", name="Open access").click()
    expect(page.get_by_text("Break-glass access open until")).to_be_visible()
    expect(page.get_by_role("table", name="Break-glass grants")).to_contain_text(str(patient.contact_id)[:13])
    screenshot(page, "break-glass-found")
    page.goto(f"/contacts/{patient.contact_id}/")
    expect(page.get_by_text("e2e.emergency@example.org")).to_be_visible()
    expect(page.get_by_text("under break-glass access")).to_be_visible()
