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
from audit.break_glass import break_glass_open
from audit.exports import verify_export
from audit.models import AuditEvent
from contacts.services import ContactInput, contact_upsert_many
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
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
            action="campaign.approve_compliance",
            tenant=officer.tenant,
            target=("campaigns.campaign", f"c-{number}"),
        )
    audit.record(actor=Actor.system("e2e"), action="phi.read", tenant=officer.tenant)

    browser_sign_in(page, officer)
    page.get_by_role("link", name="Audit trail").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail")

    page.get_by_label("Action").fill("campaign.")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table", name="Audit events").locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Campaign approved by compliance")  # the label, not the code
    expect(page).to_have_url(re.compile(r"action=campaign"))
    expect(page.get_by_text("3 events match")).to_be_visible()
    screenshot(page, "audit-filtered")

    # Straight after the (htmx) filter: the export is these 3 events, not the whole trail.
    audit.record(
        actor=Actor.system("e2e"), action="campaign.approve_compliance", tenant=officer.tenant
    )  # after
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export").click()
    content = download_info.value.path().read_bytes()
    assert verify_export(content) == []
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(content)).read("manifest.json"))
    assert manifest["row_count"] == 3
    assert manifest["filters"]["action"] == "campaign."
    assert set(manifest["filters"]) == {"action", "through_id"}

    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Audit event")
    expect(page.get_by_text("Campaign approved by compliance")).to_be_visible()
    page.go_back()

    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_text("Chain intact").first).to_be_visible()


def test_compliance_officer_finds_every_access_to_one_patient(page, make_person, settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path)
    officer = make_person(Role.COMPLIANCE_OFFICER)
    (patient, other) = contact_upsert_many(
        tenant=officer.tenant,
        actor=Actor.system("e2e"),
        inputs=[
            ContactInput(email="e2e.searched@example.org", external_ids={"mrn": "MRN-E2E-1"}),
            ContactInput(email="e2e.other@example.org"),
        ],
        source="e2e",
    )
    system = Actor.system("e2e")
    audit.record(actor=system, action="phi.read", tenant=officer.tenant, contacts=[patient.contact_id])
    audit.record(actor=system, action="phi.read", tenant=officer.tenant, contacts=[other.contact_id])
    audit.record(
        actor=system,
        action="phi.read",
        tenant=officer.tenant,
        contacts=[other.contact_id, patient.contact_id],
    )

    browser_sign_in(page, officer)
    page.get_by_role("link", name="Audit trail").first.click()
    page.get_by_label("Find the patient").fill("MRN-E2E-1")
    page.get_by_role("button", name="Find the patient").click()
    expect(page).to_have_url(re.compile(f"contact={patient.contact_id}"))
    assert "MRN-E2E-1" not in page.url
    rows = page.get_by_role("table", name="Audit events").locator("tbody tr")
    # The two reads that included the patient, the upsert, and the lookup just made.
    with tenant_context(officer.tenant):
        expected = AuditEvent.objects.filter(contact_ids__contains=[patient.contact_id]).count()
    expect(rows).to_have_count(expected)
    screenshot(page, "audit-patient")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export").click()
    manifest = json.loads(
        zipfile.ZipFile(io.BytesIO(download_info.value.path().read_bytes())).read("manifest.json")
    )
    assert manifest["row_count"] == expected
    assert manifest["filters"]["contact"] == str(patient.contact_id)

    page.get_by_label("Find the patient").fill("nobody@example.org")
    page.get_by_role("button", name="Find the patient").click()
    expect(page.get_by_text("No contact has exactly this")).to_be_visible()


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
