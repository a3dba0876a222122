"""The browser guard (conftest.no_csp_violations) sees what the policy blocks; pages render clean."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e import conftest

pytestmark = pytest.mark.browser


def test_the_guard_catches_an_inline_script_and_style(page):
    page.goto("/login/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert conftest._csp_violations == []
    # What an injection would add: an inline script and an inline style element.
    page.evaluate(
        """() => {
        const script = document.createElement("script");
        script.textContent = "window.injected = true;";
        const style = document.createElement("style");
        style.textContent = "body { color: red; }";
        document.head.append(script, style);
    }"""
    )
    page.wait_for_timeout(200)  # the console events arrive asynchronously
    assert page.evaluate("window.injected === undefined")  # the inline script never ran
    caught = list(conftest._csp_violations)
    conftest._csp_violations.clear()  # expected here; any other test would fail on them
    assert any("script-src" in text for text in caught), caught
    assert any("style-src" in text for text in caught), caught


def test_the_guard_sees_a_script_style_or_font_from_another_origin(browser, live_server_url):
    """Every context records what its pages ask of another origin, and the test fails at teardown
    (conftest.CheckedBrowser): here a page without our policy asks a CDN for a script and a style."""
    context = browser.new_context(base_url=live_server_url)
    context.route("**/cdn.example/**", lambda route: route.abort())  # nothing leaves the machine
    page = context.new_page()
    page.set_content(
        '<link rel="stylesheet" href="https://cdn.example/style.css">'
        '<script src="https://cdn.example/lib.js"></script>'
    )
    page.wait_for_timeout(200)
    caught = list(browser.foreign)
    browser.foreign.clear()  # expected here; on any other test these would fail it
    context.close()
    assert any("script https://cdn.example/lib.js" in item for item in caught), caught
    assert any("stylesheet https://cdn.example/style.css" in item for item in caught), caught
