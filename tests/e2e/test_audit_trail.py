"""A compliance officer filters the audit trail, opens an event, verifies the chain and exports."""

import io
import json
import re
import zipfile

import pytest
from playwright.sync_api import expect

from audit import services as audit
from audit.actors import Actor
from audit.exports import verify_export
from healthmail.accounts.roles import Role

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def test_compliance_officer_filters_opens_and_exports(page, make_person, settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path)
    officer = make_person(Role.COMPLIANCE_OFFICER)
    for number in range(3):
        audit.record(
            actor=Actor.system("e2e"),
            action="campaign.approve",
            tenant=officer.tenant,
            target=("campaigns.campaign", f"c-{number}"),
        )
    audit.record(actor=Actor.system("e2e"), action="contact.view", tenant=officer.tenant)

    browser_sign_in(page, officer)
    page.get_by_role("link", name="Audit trail").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail")

    page.get_by_label("Action").fill("campaign.")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table", name="Audit events").locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(page).to_have_url(re.compile(r"action=campaign"))
    screenshot(page, "audit-filtered")

    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Audit event")
    expect(page.get_by_text("campaign.approve")).to_be_visible()
    page.go_back()

    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_text("Chain intact").first).to_be_visible()

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export").click()
    content = download_info.value.path().read_bytes()
    assert verify_export(content) == []
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(content)).read("manifest.json"))
    assert manifest["row_count"] == 3
    assert manifest["filters"] == {"action": "campaign."}
