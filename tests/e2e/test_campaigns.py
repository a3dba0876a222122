"""A marketer builds a campaign from a template and a segment and submits it; a compliance officer
approves it; the marketer schedules it and watches the progress as the outbox drains."""

import pytest
from playwright.sync_api import expect

from campaigns.models import Campaign
from campaigns.services import launch
from delivery.models import Message
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.campaigns.conftest import contacts, opt_in, segment, template, verified_domain

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def test_marketer_builds_submits_officer_approves_marketer_schedules_and_watches(
    page, browser, live_server_url, make_person
):
    marketer = make_person(Role.MARKETER)
    officer = make_person(Role.COMPLIANCE_OFFICER, tenant=marketer.tenant)
    tenant = marketer.tenant
    verified_domain(tenant, domain="mail.e2e-clinic.example.org")
    template(tenant, Actor.system("e2e"), name="Flu season 2025")
    segment(tenant, name="All patients")
    opt_in(tenant, contacts(tenant, 14, seed=11))

    # The marketer builds the campaign.
    browser_sign_in(page, marketer)
    page.get_by_role("link", name="Campaigns").first.click()
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name").first.fill("Flu shots 2025")
    page.get_by_label("Goal", exact=True).select_option(label="Awareness (vaccines, screenings, conditions)")
    page.get_by_label("Purpose", exact=True).select_option("marketing")
    page.get_by_label("Topic").select_option(label="Newsletters")
    page.get_by_label("Audience (segment)").select_option(label="All patients")
    page.get_by_label("Template", exact=True).select_option(label="Flu season 2025")
    page.get_by_label("Sender domain").select_option(label="mail.e2e-clinic.example.org")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name="Campaign: Flu shots 2025")).to_be_visible()
    expect(page.get_by_test_id("lint")).to_contain_text("No findings")
    desktop = page.frame_locator('iframe[title="Desktop preview"]')
    expect(desktop.get_by_role("heading", name="Flu shots are here")).to_be_visible()
    expect(page.frame_locator('iframe[title="Phone preview"]').get_by_text("Unsubscribe")).to_be_visible()
    screenshot(page, "campaign-draft")
    page.get_by_label("Note for the reviewers").fill("For the October newsletter list.")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_role("status").first).to_contain_text("Submitted for review")
    expect(page.get_by_test_id("campaign-status")).to_have_text("In review")

    # The compliance officer approves it, in a browser of their own.
    officer_context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 900})
    officer_page = officer_context.new_page()
    browser_sign_in(officer_page, officer)
    officer_page.get_by_role("link", name="Approvals").first.click()
    officer_page.get_by_role("link", name="Flu shots 2025").click()
    officer_page.get_by_label("Comment").fill("Footer and opt-in topic checked.")
    officer_page.get_by_role("button", name="Approve").click()
    expect(officer_page.get_by_role("status").first).to_contain_text("Approved")
    screenshot(officer_page, "campaign-approved")
    officer_context.close()

    # The marketer schedules it and watches the progress.
    page.reload()
    expect(page.get_by_test_id("campaign-status")).to_have_text("Approved")
    page.get_by_label("As soon as possible").check()
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_test_id("campaign-status")).to_have_text("Scheduled")
    with tenant_context(tenant):
        campaign = Campaign.objects.get(name="Flu shots 2025")
    launch.campaign_launch(tenant=tenant, campaign_id=campaign.pk)  # what the marketing worker runs
    expect(page.get_by_test_id("campaign-status")).to_have_text("Sending", timeout=10_000)
    expect(page.get_by_test_id("progress-waiting")).to_have_text("14")
    with tenant_context(tenant):
        Message.objects.filter(source_id=str(campaign.pk)).update(state=Message.State.DELIVERED_TLS)
    expect(page.get_by_test_id("progress-delivered")).to_have_text("14", timeout=10_000)
    screenshot(page, "campaign-progress")
    page.reload()
    expect(page.get_by_test_id("queued-count")).to_contain_text("14")
    history = page.locator("ol.history")
    expect(history).to_contain_text("Footer and opt-in topic checked.")
    expect(history).to_contain_text("launch")
