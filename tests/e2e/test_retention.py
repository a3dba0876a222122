"""A compliance officer places a legal hold, previews and approves a disposal run, and downloads its
certificate; the held messages survive."""

import re

import pytest
from playwright.sync_api import expect

from healthmail.accounts.roles import Role
from retention import disposal
from tests.retention.helpers import YEAR, message_exists, new_contact, new_messages

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def test_officer_places_a_hold_then_approves_a_disposal_run_and_downloads_the_certificate(
    page, make_person, monkeypatch, tmp_path
):
    queued = []
    monkeypatch.setattr(disposal, "enqueue", lambda task, *, tenant, **ids: queued.append(ids["run_id"]))
    officer = make_person(Role.COMPLIANCE_OFFICER)
    tenant = officer.tenant
    patient = new_contact(tenant)
    held = new_messages(tenant, 2, age=8 * YEAR, contact=patient)
    expired = new_messages(tenant, 3, age=8 * YEAR)

    browser_sign_in(page, officer)
    page.get_by_role("link", name="Retention", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Retention and legal holds")
    page.get_by_role("link", name="Place a legal hold").click()
    page.get_by_label("Matter name").fill("Doe v. Synthetic Clinic")
    page.get_by_label(re.compile(r"^Reason")).fill("Complaint served; preserve the patient's messages.")
    page.get_by_label(re.compile(r"^Counsel")).fill("Outside Counsel LLP")
    page.get_by_label("Find the patients").fill(patient.email)  # exact identifier, not a record id
    page.get_by_role("button", name="Place hold").click()
    expect(page.get_by_text("Legal hold placed")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Doe v. Synthetic Clinic")
    screenshot(page, "retention-hold")

    page.get_by_role("link", name="Disposal runs").click()
    page.get_by_role("button", name="Find records due for disposal").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Disposal run")
    expect(page.get_by_test_id("held-message_metadata")).to_have_text("2")
    expect(page.get_by_test_id("to-destroy-message_metadata")).to_have_text("3")
    expect(page.locator("main")).not_to_contain_text("A1C")  # the preview shows no PHI
    screenshot(page, "retention-preview")
    # The officer planned the run and is the organization's only officer: four eyes ask why.
    page.get_by_role("button", name="Approve destruction").click()
    expect(page.get_by_text("say why no second person can")).to_be_visible()
    assert queued == []
    page.get_by_text("no other officer can approve it?").click()
    page.get_by_label("Why no second person can decide").fill("Only compliance officer of the practice")
    page.get_by_role("button", name="Approve destruction").click()
    expect(page.get_by_text("Run approved")).to_be_visible()
    expect(page.get_by_text("as sole officer")).to_be_visible()
    assert len(queued) == 1
    disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=queued[0])  # what the worker does

    expect(page.get_by_test_id("run-status")).to_have_text("Completed", timeout=10_000)  # the page polls
    expect(page.get_by_test_id("destroyed")).to_have_text("3")
    screenshot(page, "retention-certificate")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download certificate (PDF)").click()
    download = download_info.value
    assert re.fullmatch(r"destruction-certificate-.*\.pdf", download.suggested_filename)
    path = tmp_path / "certificate.pdf"
    download.save_as(path)
    assert path.read_bytes().startswith(b"%PDF-")

    assert all(message_exists(tenant, m.pk) for m in held)
    assert not any(message_exists(tenant, m.pk) for m in expired)
