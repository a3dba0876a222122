"""Oversight chores in the browser: a tenant admin runs the periodic access review (removing one
member with a note) and a compliance officer reads it; an admin publishes a policy, a member sees the
banner on every page until they acknowledge it, and compliance sees who has not."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def _second_page(browser, live_server_url):
    context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    return context, context.new_page()


def test_admin_reviews_access_and_compliance_reads_the_review(page, make_person, browser, live_server_url):
    admin = make_person(Role.TENANT_ADMIN)
    marketer = make_person(Role.MARKETER, tenant=admin.tenant)
    officer = make_person(Role.COMPLIANCE_OFFICER, tenant=admin.tenant)

    browser_sign_in(page, admin)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Access reviews").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Access reviews")
    expect(page.get_by_text("No access review completed yet.")).to_be_visible()
    page.get_by_role("link", name="Start the access review").click()
    members = page.get_by_role("table", name="Members to review")
    expect(members).to_contain_text(marketer.email)
    expect(members).to_contain_text(officer.email)
    page.get_by_role("group", name=f"Decision for {marketer.email}").get_by_label("Remove").check()
    page.get_by_role("button", name="Record the review").click()
    expect(page.get_by_role("alert")).to_contain_text("Say why")  # a removal needs a note
    page.get_by_label(f"Note for {marketer.email}").fill("Moved to another practice in November")
    page.get_by_role("button", name="Record the review").click()
    expect(page.get_by_text("Access review recorded.")).to_be_visible()
    reviewed = page.get_by_role("table", name="Members reviewed")
    expect(reviewed.get_by_role("row").filter(has_text=marketer.email)).to_contain_text("Remove")
    screenshot(page, "access-review-recorded")

    from healthmail.accounts.models import Membership

    with tenant_context(admin.tenant):
        assert not Membership.objects.get(tenant=admin.tenant, user__email=marketer.email).is_active

    context, second = _second_page(browser, live_server_url)
    try:
        browser_sign_in(second, officer)
        second.goto("/incidents/access-reviews/")
        table = second.get_by_role("table", name="Completed access reviews")
        expect(table).to_contain_text(admin.email)
        expect(second.get_by_role("link", name="Start the access review")).to_have_count(0)
        table.get_by_role("link", name=re.compile("^Review of")).click()
        expect(second.get_by_role("table", name="Members reviewed")).to_contain_text(
            "Moved to another practice in November"
        )
    finally:
        context.close()


def test_a_member_acknowledges_a_published_policy(page, make_person, browser, live_server_url):
    admin = make_person(Role.TENANT_ADMIN)
    member = make_person(Role.CLINICAL_REVIEWER, tenant=admin.tenant)

    browser_sign_in(page, admin)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Policies").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Policies")
    page.get_by_label("Title").fill("Acceptable use")
    page.get_by_label("Policy text").fill("Open patient records only when your work needs them.")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Version 1 published: every member is asked to acknowledge it.")).to_be_visible()
    expect(page.get_by_role("table", name="Who has not acknowledged Acceptable use")).to_contain_text(
        member.email
    )

    context, second = _second_page(browser, live_server_url)
    try:
        browser_sign_in(second, member)
        banner = second.get_by_role("region", name="Policies to acknowledge")
        expect(banner).to_contain_text("1 policy to read and acknowledge")
        banner.get_by_role("link", name="Read and acknowledge").click()
        expect(second.get_by_text("Open patient records only when your work needs them.")).to_be_visible()
        screenshot(second, "policy-to-acknowledge")
        second.get_by_role("button", name="I have read and acknowledge Acceptable use, version 1").click()
        expect(second.get_by_text("You acknowledged Acceptable use, version 1.")).to_be_visible()
        expect(second.get_by_role("region", name="Policies to acknowledge")).to_have_count(0)
    finally:
        context.close()

    page.reload()
    expect(page.get_by_role("table", name="Who has not acknowledged Acceptable use")).not_to_contain_text(
        member.email
    )
    expect(page.get_by_role("table", name="Who acknowledged Acceptable use")).to_contain_text(member.email)
