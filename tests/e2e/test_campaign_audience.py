"""Warn before sending nothing: the marketer sees who would receive a campaign after the consent
gate (with the reasons for the others) before submitting it, and a campaign that would reach nobody
is scheduled only after ticking an explicit confirmation."""

import pytest
from playwright.sync_api import expect

from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from tests.campaigns.conftest import (
    approved,
    contacts,
    draft,
    opt_in,
    person,
    segment,
    template,
    verified_domain,
)

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def _campaign_world(tenant):
    """The reviewers and what a campaign needs, in the marketer's tenant (the campaign itself is
    created by another marketer: the services need an actor with a membership)."""
    team = {
        "marketer": person(tenant, Role.MARKETER),
        "compliance": person(tenant, Role.COMPLIANCE_OFFICER),
        "clinical": person(tenant, Role.CLINICAL_REVIEWER),
    }
    ready = {
        "domain": verified_domain(tenant, domain="mail.e2e-audience.example.org"),
        "template": template(tenant, Actor.system("e2e"), name="Newsletter"),
        "segment": segment(tenant, name="All patients"),
    }
    return team, ready


def test_draft_shows_the_audience_after_the_consent_gate_before_submitting(page, make_person):
    marketer = make_person(Role.MARKETER)
    tenant = marketer.tenant
    team, ready = _campaign_world(tenant)
    opt_in(tenant, contacts(tenant, 14, seed=21)[:12])  # two never opted in
    campaign = draft(tenant, team, ready, name="Spring newsletter")

    browser_sign_in(page, marketer)
    page.goto(f"/campaigns/{campaign.pk}/")

    preview = page.get_by_test_id("audience-preview")
    expect(preview).to_contain_text("Who would receive it now")
    expect(page.get_by_test_id("audience-members")).to_have_text("14")
    expect(page.get_by_test_id("audience-sendable")).to_have_text("12")
    exclusions = page.get_by_test_id("audience-exclusions")
    expect(exclusions).to_contain_text("Never opted in to the topic")
    expect(exclusions).to_contain_text("fewer than 11")  # two people: masked
    expect(exclusions).not_to_contain_text("no_opt_in")
    expect(page.get_by_test_id("audience-empty-warning")).to_have_count(0)
    expect(page.get_by_role("button", name="Submit for review")).to_be_visible()
    screenshot(page, "campaign-audience-draft")


def test_a_campaign_that_would_reach_nobody_needs_an_explicit_confirmation(page, make_person):
    marketer = make_person(Role.MARKETER)
    tenant = marketer.tenant
    team, ready = _campaign_world(tenant)
    contacts(tenant, 5, seed=22)  # in the segment, but nobody opted in to the topic
    campaign = approved(tenant, team, ready, name="Nobody will get this")

    browser_sign_in(page, marketer)
    page.goto(f"/campaigns/{campaign.pk}/")
    expect(page.get_by_test_id("campaign-status")).to_have_text("Approved")
    warning = page.get_by_test_id("audience-empty-warning")
    expect(warning).to_contain_text("This campaign would send no messages.")
    expect(page.get_by_test_id("audience-sendable")).to_have_text("0")
    expect(page.get_by_test_id("audience-exclusions")).to_contain_text("Never opted in to the topic")
    screenshot(page, "campaign-audience-empty")

    # Scheduling without the confirmation is refused, with the reason.
    page.get_by_label("As soon as possible").check()
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_role("status").first).to_contain_text("would send no messages")
    expect(page.get_by_role("status").first).to_contain_text("Confirm to schedule it anyway")
    expect(page.get_by_test_id("campaign-status")).to_have_text("Approved")

    # With it, the campaign is scheduled.
    page.get_by_label("As soon as possible").check()
    page.get_by_label("Schedule anyway: I understand this campaign would send no messages now").check()
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_test_id("campaign-status")).to_have_text("Scheduled")
