"""The component gallery in a real browser: axe checks every component (tests/e2e/axe.py runs on this
page like on any other), with the form's errors shown too, at desktop width and at 320 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from healthmail.accounts.roles import Role

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def test_every_component_passes_axe_and_fits_320px(page, make_person, axe_audit):
    browser_sign_in(page, make_person(Role.MARKETER))
    page.goto("/ui/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Design system")
    for component in ("Colours", "Form controls", "Buttons", "Tables", "Badges", "Alerts", "Empty states"):
        expect(page.get_by_role("heading", level=2, name=component)).to_be_visible()
    screenshot(page, "design-system")

    page.get_by_role("link", name="Show the errors").click()
    expect(page.get_by_role("alert")).to_contain_text("Campaign name")
    expect(page.get_by_label("Campaign name")).to_have_attribute("aria-invalid", "true")
    page.set_viewport_size({"width": 320, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, "design-system-320")
    axe_audit.check_open_pages(page.context)
    assert {"/ui/", "/ui/?invalid=1"} <= axe_audit.pages_checked
