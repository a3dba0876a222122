"""A compliance officer records a patient's access request, extends it once with reasons, and delivers
the signed package through the secure portal."""

from __future__ import annotations

import datetime
import json
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from healthmail.accounts.roles import Role
from healthmail.crypto import signing
from healthmail.tenants.context import tenant_context
from tests.delivery.patient_mail import patient_sender
from tests.incidents.helpers import patients

from .conftest import browser_sign_in, screenshot, unique

pytestmark = pytest.mark.browser


def test_officer_records_extends_and_delivers_an_access_request(page, make_person):
    officer = make_person(Role.COMPLIANCE_OFFICER)
    tenant = officer.tenant
    patient_sender(tenant)
    (patient,) = patients(tenant, 1, label=unique("ar")[-8:] + "-")

    browser_sign_in(page, officer)
    page.goto("/incidents/")
    page.get_by_role("link", name="Access requests").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Access requests")
    page.get_by_label(re.compile("^Patient's contact id")).fill(str(patient.pk))
    page.get_by_role("button", name="Record request").click()
    expect(page.get_by_text("The 30-day clock runs from the date received")).to_be_visible()
    table = page.get_by_role("table", name="Access requests")
    today = timezone.localdate()
    expect(table).to_contain_text((today + datetime.timedelta(days=30)).isoformat())

    page.get_by_label("Reasons for the delay").fill("Older records are being retrieved from the archive.")
    page.get_by_role("button", name="Extend by 30 days").click()
    expect(page.get_by_text("Extended by 30 days")).to_be_visible()
    expect(table).to_contain_text((today + datetime.timedelta(days=60)).isoformat())
    expect(page.get_by_role("button", name="Extend by 30 days")).to_have_count(0)  # once only

    page.get_by_role("button", name="Deliver the package").click()
    expect(page.get_by_text("The signed package was sent through the secure portal.")).to_be_visible()
    expect(table).to_contain_text("Delivered")
    screenshot(page, "access-request-delivered")

    from delivery.models import Message
    from delivery.outbox import message_content
    from incidents.access_requests import package_verify
    from incidents.models import AccessRequest

    with tenant_context(tenant):
        request = AccessRequest.objects.get(contact_id=patient.pk)
        text = message_content(Message.objects.get(pk=request.message_id)).text
        public_key = signing.signing_key_current(tenant).public_key
    assert package_verify(json.loads(text[text.index("{") :]), public_key=public_key)


def test_officer_denies_on_a_reviewable_ground_and_a_clinical_reviewer_reviews(
    page, make_person, browser, live_server_url
):
    officer = make_person(Role.COMPLIANCE_OFFICER)
    tenant = officer.tenant
    clinician = make_person(Role.CLINICAL_REVIEWER, tenant=tenant)
    reviewer = make_person(Role.CLINICAL_REVIEWER, tenant=tenant)
    patient_sender(tenant)
    (patient,) = patients(tenant, 1, label=unique("dn")[-8:] + "-")

    browser_sign_in(page, officer)
    page.goto("/incidents/access-requests/")
    page.get_by_label(re.compile("^Patient's contact id")).fill(str(patient.pk))
    page.get_by_role("button", name="Record request").click()
    page.get_by_text("Deny access").click()
    page.get_by_label(re.compile("^Ground")).select_option("a3i")
    page.get_by_label(re.compile("^Basis, in plain language")).fill(
        "A clinician judged that access now is likely to endanger your safety."
    )
    page.get_by_label(re.compile("^Contact for complaints")).fill("Privacy Office")
    page.get_by_label(re.compile("^Its telephone number")).fill("1-800-555-0100")
    page.get_by_label(re.compile("^Licensed professional")).select_option(label=clinician.email)
    page.get_by_label(re.compile("^Their license")).fill("TX-MD-4242")
    page.get_by_role("button", name="Deny and send the written denial").click()
    expect(page.get_by_text("Denial recorded; the written denial was sent")).to_be_visible()
    table = page.get_by_role("table", name="Access requests")
    expect(table).to_contain_text("Denied")
    page.get_by_role("button", name="The patient asked for a review").click()
    expect(table).to_contain_text("review requested")

    context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    second = context.new_page()
    try:
        browser_sign_in(second, reviewer)
        second.get_by_role("navigation", name="Main").get_by_role("link", name="Denials to review").click()
        expect(second.get_by_text("likely to endanger your safety")).to_be_visible()
        second.get_by_label("Access to be provided").check()
        second.get_by_label(re.compile("^Your license")).fill("TX-MD-5151")
        second.get_by_label(re.compile("^Your reasons")).fill("The treating team now agrees access is safe.")
        second.get_by_role("button", name="Record the determination").click()
        expect(second.get_by_text("Review recorded; the individual was told in writing.")).to_be_visible()
        expect(second.get_by_text("No denial is waiting for a review.")).to_be_visible()
    finally:
        context.close()

    page.reload()
    expect(table).to_contain_text("Access to be provided")
    expect(page.get_by_role("button", name="Deliver the package")).to_be_visible()  # reopened
