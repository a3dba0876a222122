"""Done-when of issue 21, in a real browser: a compliance officer opens an incident from a break-glass
alert, derives the affected individuals from the audit trail, completes the risk assessment and
proposes "breach"; a second officer signs it off; the deadlines show the BAA's shorter term; the
notices go out through the secure portal; the delivery engine takes them to a loopback SMTP server,
and they are in the dev mailbox; the incident's history is in the audit trail."""

from __future__ import annotations

import datetime
import mailbox
import re
import threading

import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import expect

from audit.alerts import alerts_scan_tenant
from audit.break_glass import break_glass_open
from audit.chain import seal_pending
from delivery.engine.worker import drain
from delivery.models import Stream
from delivery.portal.services import portal_deliver
from healthmail import labels
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import BusinessAssociateAgreement
from tests.delivery.engine_support import dependencies
from tests.delivery.patient_mail import patient_sender
from tests.delivery.servers import SmtpKit
from tests.incidents.helpers import FACTORS, LETTER, patients, read_event

from .conftest import browser_sign_in, screenshot, unique

pytestmark = pytest.mark.browser


@pytest.fixture
def smtp(tmp_path):
    (tmp_path / "smtp").mkdir()
    kit = SmtpKit(tmp_path / "smtp")
    yield kit
    kit.stop()


def _deliver(tenant, kit) -> None:
    """The engine's transactional drain, in its own thread (Playwright keeps an event loop in this one)."""
    from delivery.smtp.connection import TransportSettings
    from delivery.smtp.timeouts import SmtpTimeouts

    transport = TransportSettings(
        ca_file=kit.ca_file, local_hostname="sender.healthmail.test", timeouts=SmtpTimeouts.every(10)
    )
    failure = []

    def work():
        try:
            drain(
                tenant_id=tenant.pk,
                stream=Stream.TRANSACTIONAL,
                deps=dependencies(kit, transport, portal=portal_deliver),
            )
        except Exception as error:  # noqa: BLE001 - reported in the test thread below
            failure.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=120)
    assert not failure, failure


def _fill(page, label: str, value: str) -> None:
    page.get_by_label(re.compile("^" + re.escape(label))).fill(value)


def test_officer_runs_a_breach_from_a_break_glass_alert_to_the_notices(
    page, browser, live_server_url, make_person, smtp, settings, tmp_path
):
    first = make_person(Role.COMPLIANCE_OFFICER)
    tenant = first.tenant
    second = make_person(Role.COMPLIANCE_OFFICER, tenant=tenant)
    reviewer = make_person(Role.CLINICAL_REVIEWER, tenant=tenant)
    from healthmail.accounts.models import User

    reviewer_user = User.objects.get(email=reviewer.email)
    with tenant_context(tenant):
        BusinessAssociateAgreement.objects.filter(tenant=tenant).update(breach_notification_days=10)
    patient_sender(tenant)
    # Addresses on the loopback MX (good.test), so the engine can deliver the notices.
    touched = patients(tenant, 2, state="TX", label=unique("bg")[-8:] + "-", domain="good.test")
    break_glass_open(
        user=reviewer_user,
        role=Role.CLINICAL_REVIEWER,
        tenant=tenant,
        target_type="contacts.contact",
        target_id=str(touched[0].pk),
        reason="Patient unconscious in the emergency room",
    )
    read_event(tenant, reviewer_user, touched)  # the records read under the grant
    seal_pending(tenant.pk)
    alerts_scan_tenant(tenant)

    browser_sign_in(page, first)
    page.goto("/incidents/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Incidents")
    page.get_by_role("link", name=re.compile("Open an incident from: Break-glass access opened")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Record an incident")
    _fill(page, "What happened", "A reviewer opened patient records under break-glass without an emergency.")
    page.get_by_label(re.compile("^Discovered by a business associate")).check()
    page.get_by_role("button", name="Record incident").click()
    expect(page.get_by_text("The notification clock runs from the discovery date")).to_be_visible()
    expect(page.get_by_role("table", name="Evidence")).to_contain_text("Break-glass access opened")
    incident_url = page.url

    now = timezone.now()
    _fill(page, "From (UTC)", (now - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    _fill(page, "Until (UTC)", (now + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label(re.compile("^Actor kind")).select_option("user")
    _fill(page, "Actor id", str(reviewer_user.pk))
    page.get_by_role("button", name="Derive affected individuals").click()
    expect(page.get_by_text("2 individuals")).to_be_visible()

    _fill(page, "1. Nature", FACTORS["factor_nature"])
    _fill(page, "2. Who used", FACTORS["factor_recipient"])
    _fill(page, "3. Was it", FACTORS["factor_acquired"])
    _fill(page, "4. How far", FACTORS["factor_mitigated"])
    page.get_by_label("Not a low probability of compromise").check()
    page.get_by_role("button", name="Save assessment").click()
    expect(page.get_by_text("Risk assessment recorded.")).to_be_visible()
    page.get_by_label("Breach", exact=True).check()
    _fill(page, "Reasoning", "Records were viewed with no emergency for these patients.")
    page.get_by_role("button", name="Propose decision").click()
    expect(page.get_by_text("A second compliance officer must sign it off")).to_be_visible()
    # The proposer cannot sign off while another officer can.
    page.get_by_role("button", name="Sign off the decision").click()
    expect(page.get_by_role("alert")).to_contain_text("Another compliance officer must approve")

    other = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 900})
    second_page = other.new_page()
    browser_sign_in(second_page, second)
    second_page.goto(incident_url)
    second_page.get_by_role("button", name="Sign off the decision").click()
    expect(second_page.get_by_text("Decision signed off.")).to_be_visible()
    other.close()

    page.goto(incident_url)
    deadlines = page.get_by_role("table", name="Deadlines")
    discovered = timezone.localdate()
    expect(deadlines).to_contain_text("Covered entity (business associate notice)")
    expect(deadlines).to_contain_text((discovered + datetime.timedelta(days=10)).isoformat())
    expect(deadlines).to_contain_text("BAA")
    expect(deadlines).to_contain_text((discovered + datetime.timedelta(days=60)).isoformat())
    expect(page.get_by_text("The tightest deadline: Covered entity")).to_be_visible()
    screenshot(page, "incident-deadlines")

    _fill(page, "Types of information", LETTER["phi_types"])
    _fill(page, "Steps individuals", LETTER["steps_for_individuals"])
    _fill(page, "What we are doing", LETTER["what_we_are_doing"])
    _fill(page, "How to reach us", LETTER["contact_procedures"])
    page.get_by_role("button", name="Save notice content").click()
    expect(page.get_by_text("Notice content saved.")).to_be_visible()
    page.get_by_role("link", name="Preview the letter to individuals").click()
    letter = page.locator("pre")
    for part in (*LETTER.values(), "What happened", "We discovered it on"):
        expect(letter).to_contain_text(part)  # 164.404(c)(1)(A)-(E)
    page.goto(incident_url)
    page.get_by_role("button", name="Send individual notices through the secure portal").click()
    expect(
        page.get_by_text("2 notices queued through the secure portal; 0 need a substitute")
    ).to_be_visible()
    expect(page.get_by_role("table", name="Notices sent")).to_contain_text("Queued")

    _deliver(tenant, smtp)
    assert len(smtp["good"].messages) == 2  # the PHI-free notices; the letters wait in the portal
    maildir = mailbox.Maildir(str(tmp_path / "mailbox"), create=True)
    for message in smtp["good"].messages:
        maildir.add(message.content)
    settings.DEV_MAILBOX_DIR = str(tmp_path / "mailbox")
    page.goto("/dev/mailbox/")
    rows = page.get_by_test_id("mailbox-row").filter(has_text=f"You have a secure message from {tenant.name}")
    expect(rows).to_have_count(2)
    screenshot(page, "incident-notices-in-the-dev-mailbox")
    page.goto(incident_url)
    expect(page.get_by_role("table", name="Notices sent")).not_to_contain_text("Queued")

    page.get_by_role("link", name="The incident's history in the audit trail").click()
    for action in (
        "incident.open",
        "incident.derive_affected",
        "incident.risk_assess",
        "incident.decision_propose",
        "incident.decision_sign_off",
        "incident.letter_update",
        "incident.notices_send",
    ):
        # Each step by its label ("Incident opened"), never the code.
        expect(
            page.get_by_role("cell", name=labels.label("audit_action", action), exact=True).first
        ).to_be_visible()
    screenshot(page, "incident-history-in-the-audit-trail")
