"""A compliance officer filters the audit trail, opens an event, verifies the chain and exports; and
sees on the alerts page whether each officer's alert email was delivered."""

import io
import json
import re
import time
import zipfile

import pytest
from playwright.sync_api import expect

from audit import alerts, chain
from audit import services as audit
from audit.actors import Actor
from audit.break_glass import break_glass_open
from audit.exports import verify_export
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.factories import MembershipFactory
from tests.sysmail.outbox import deliver_system_mail
from tests.testapp.models import SecretNote

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


def test_officer_sees_alert_mail_retried_then_delivered(page, make_person, settings, tmp_path, smtp_receiver):
    """Break-glass opened while the mail server is down: the alert page says each officer's copy is
    being retried; once the server is back and the retry ran, it says sent."""
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path)
    officer = make_person(Role.COMPLIANCE_OFFICER)
    colleague = MembershipFactory(tenant=officer.tenant, role=Role.COMPLIANCE_OFFICER).user
    reviewer = MembershipFactory(tenant=officer.tenant, role=Role.CLINICAL_REVIEWER).user
    with tenant_context(officer.tenant):
        note = SecretNote.objects.create(tenant=officer.tenant, body="Synthetic Patient Zed")
    break_glass_open(
        user=reviewer,
        role=Role.CLINICAL_REVIEWER,
        tenant=officer.tenant,
        target_type="testapp.secretnote",
        target_id=str(note.pk),
        reason="Patient unconscious in the emergency department",
    )
    chain.seal_pending(officer.tenant.pk)
    assert [a.rule for a in alerts.alerts_scan_tenant(officer.tenant)] == ["break_glass"]
    assert deliver_system_mail(officer.tenant) == ["retrying", "retrying"]

    browser_sign_in(page, officer)
    page.goto("/audit/alerts/")
    row = page.get_by_role("table", name="Alerts").locator("tbody tr").filter(has_text="Break-glass")
    delivery = row.get_by_role("list", name="Email delivery")
    expect(delivery.get_by_role("listitem")).to_have_count(2)
    for email in (officer.email, colleague.email):
        expect(delivery.get_by_role("listitem").filter(has_text=email)).to_contain_text("Retrying")
    expect(delivery).to_contain_text("mail server unreachable")
    screenshot(page, "alert-mail-retrying")

    smtp_receiver.up()
    time.sleep(1.1)  # the first retry's backoff
    assert deliver_system_mail(officer.tenant) == ["sent", "sent"]
    page.reload()
    for email in (officer.email, colleague.email):
        expect(delivery.get_by_role("listitem").filter(has_text=email)).to_contain_text("Sent")
    assert sorted(smtp_receiver.recipients()) == sorted([officer.email, colleague.email])
    screenshot(page, "alert-mail-sent")
