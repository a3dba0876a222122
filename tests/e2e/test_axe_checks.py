"""The axe hook itself (tests/e2e/axe.py): it catches a deliberately broken page, passes a good one,
checks what htmx swaps in, and the browser fixture turns serious findings into a failed test."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

BROKEN = """<!doctype html><html><head><title>Broken</title></head><body><main><h1>Broken on purpose</h1>
<form><input type="text" name="nickname"><button type="submit"></button></form>
<p style="color:#bbbbbb;background:#ffffff">Light grey text on white: 1.9:1.</p>
<img src="/static/healthmail/favicon.svg"></main></body></html>"""

GOOD = """<!doctype html><html lang="en"><head><title>Fine</title></head><body><main><h1>Fine</h1>
<form><label for="n">Nickname</label><input id="n" type="text" name="nickname">
<button type="submit">Save</button></form>
<p style="color:#1b1f24;background:#ffffff">Dark text on white.</p>
<img src="/static/healthmail/favicon.svg" alt="HealthMail"></main></body></html>"""


def _serve(page, path: str, body: str) -> None:
    page.route(f"**{path}", lambda route: route.fulfill(status=200, content_type="text/html", body=body))


def test_a_broken_page_fails_with_its_serious_violations(page, axe_audit):
    _serve(page, "/axe-broken/", BROKEN)
    page.goto("/axe-broken/")
    expect(page.get_by_role("heading", name="Broken on purpose")).to_be_visible()
    axe_audit.check_open_pages(page.context)

    failing = {violation.rule for violation in axe_audit.failures()}
    assert {"label", "color-contrast", "html-has-lang", "button-name", "image-alt"} <= failing
    assert "/axe-broken/" in axe_audit.verdict()
    axe_audit.forget()  # this test broke the page on purpose; the fixture would fail it otherwise
    assert axe_audit.verdict() == ""


def test_a_good_page_passes(page, axe_audit):
    _serve(page, "/axe-good/", GOOD)
    page.goto("/axe-good/")
    axe_audit.check_open_pages(page.context)
    assert "/axe-good/" in axe_audit.pages_checked
    assert axe_audit.failures() == []


def test_content_swapped_in_by_htmx_is_checked(page, axe_audit):
    """A fragment that arrives after load (htmx) is checked when it settles."""
    fragment = '<input type="text" name="unlabelled">'
    page.route(
        "**/axe-fragment/", lambda route: route.fulfill(status=200, content_type="text/html", body=fragment)
    )
    page_html = GOOD.replace(
        "</main>",
        '<div hx-get="/axe-fragment/" hx-trigger="load" id="target"></div>'
        '<script src="/static/vendor/htmx.min.js"></script></main>',
    )
    _serve(page, "/axe-htmx/", page_html)
    page.goto("/axe-htmx/")
    expect(page.locator("#target input")).to_have_count(1)
    page.wait_for_function("() => true")
    page.wait_for_timeout(1000)  # the debounced run after htmx:afterSettle
    assert "label" in {violation.rule for violation in axe_audit.failures()}
    axe_audit.forget()
