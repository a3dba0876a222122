"""Keyboard-only journeys (WCAG 2.1.1, 2.4.3, 2.4.7, 3.3.1, 4.1.3, 1.4.10, 3.1.1): sign-in with TOTP,
the secure portal with its one-time code, unsubscribe, preferences and authorization signing, done
with Tab, Enter and Space only. Every element the Tab key stops on must show a visible focus ring
and be on screen; errors must be announced (role=alert, focused) and tied to their fields
(aria-invalid, aria-describedby); every page has `lang`, and fits 320 px and 200% zoom (a 1280 px
window at 200% is a 640 px CSS viewport) without horizontal scrolling. axe runs on every page too
(tests/e2e/axe.py)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from consent import links, services
from consent.models import Authorization
from delivery.outbox import message_content
from delivery.portal.services import portal_deliver
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.consent.conftest import new_contact, new_text
from tests.delivery.outbox_helpers import PHI_SUBJECT, make_message
from tests.delivery.patient_mail import patient_mail, patient_sender
from tests.factories import PASSWORD, BaaFactory, TenantFactory, totp_code

from .conftest import unique

pytestmark = pytest.mark.browser

WIDTHS = (320, 640)  # 320 px (WCAG 1.4.10) and a 1280 px window at 200% zoom (1.4.4)
# The text spacing a user may set (WCAG 1.4.12); nothing may be cut off or overflow with it.
TEXT_SPACING = (
    "* { line-height: 1.5 !important; letter-spacing: .12em !important; word-spacing: .16em !important; }"
    " p { margin-bottom: 2em !important; }"
)

FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const s = getComputedStyle(e);
  const r = e.getBoundingClientRect();
  const label = e.labels && e.labels.length ? e.labels[0].innerText : '';
  return {
    tag: e.tagName.toLowerCase(), id: e.id,
    name: (e.getAttribute('aria-label') || label || e.innerText || e.value || '').trim(),
    ring: (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none',
    onScreen: r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0
      && r.top < innerHeight && r.left < innerWidth,
    role: e.getAttribute('role') || '',
    // Chromium's date input has a calendar button inside it: focused, the input itself is not
    // :focus, and the ring is drawn on ::-webkit-calendar-picker-indicator (app.css), not readable here.
    innerControl: e.type === 'date' && !e.matches(':focus'),
  };
}"""


def _path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def tab_to(page, name: str, *, tags: tuple[str, ...] = (), limit: int = 60) -> dict:
    """Press Tab until the focused element (of one of `tags`, if given) has a name starting with
    `name`; every stop on the way must show a focus ring."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            continue
        assert focused["ring"] or focused["innerControl"], f"no visible focus indicator on {focused}"
        assert focused["onScreen"], f"the focused element is off screen: {focused}"
        if focused["name"].startswith(name) and (not tags or focused["tag"] in tags):
            return focused
    raise AssertionError(f"Tab never reached “{name}” on {page.url}")


def type_into(page, label: str, text: str) -> None:
    """Tab to the text field labelled `label`, replace what it holds with `text`."""
    tab_to(page, label, tags=("input", "textarea"))
    page.keyboard.press("Control+A")
    page.keyboard.type(text)


def _overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def assert_page_basics(page) -> None:
    """`lang` is set; the page does not scroll sideways at 320 px or at 200% zoom, nor with the text
    spacing of WCAG 1.4.12 at 200% zoom."""
    lang = page.evaluate("document.documentElement.lang")
    assert re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", lang or ""), f"no valid lang on {page.url}: {lang!r}"
    size = page.viewport_size
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        assert _overflow(page) <= 1, f"{page.url} scrolls sideways by {_overflow(page)}px at {width}px wide"
    # A constructed style sheet (CSSOM), not a <style> tag: the page's policy forbids inline style.
    spacing = page.evaluate_handle(
        "css => { const s = new CSSStyleSheet(); s.replaceSync(css);"
        " document.adoptedStyleSheets = [...document.adoptedStyleSheets, s]; return s; }",
        TEXT_SPACING,
    )
    assert _overflow(page) <= 1, f"{page.url} scrolls sideways with WCAG 1.4.12 text spacing"
    page.evaluate(
        "s => { document.adoptedStyleSheets = document.adoptedStyleSheets.filter(x => x !== s); }", spacing
    )
    page.set_viewport_size(size)


def assert_error_announced_and_tied(page, field_label: str, message: re.Pattern) -> None:
    """The error summary is an alert with focus; the field is invalid and described by its error."""
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text(message)
    # a11y.js moves focus on DOMContentLoaded, which may come a moment after the summary is in the DOM
    try:
        page.wait_for_function(
            "() => document.activeElement && document.activeElement.getAttribute('role') === 'alert'",
            timeout=5_000,
        )
    except PlaywrightTimeoutError:
        raise AssertionError(f"the error summary did not receive focus: {page.evaluate(FOCUSED)}") from None
    field = page.get_by_label(re.compile("^" + re.escape(field_label))).first
    expect(field).to_have_attribute("aria-invalid", "true")
    described = field.get_attribute("aria-describedby") or ""
    texts = [page.locator(f"[id='{item}']").inner_text() for item in described.split()]
    assert any(message.search(text) for text in texts), (
        f"{field_label} is not described by its error: {texts}"
    )


@pytest.fixture
def keyboard_page(browser, live_server_url, committed):
    context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def clinic(committed):
    slug = unique("clinic")
    tenant = TenantFactory(name=f"Clinic {slug[-10:]}", slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


def test_sign_in_with_totp_by_keyboard(keyboard_page, make_person):
    page = keyboard_page
    person = make_person(Role.TENANT_ADMIN)
    page.goto("/login/")
    assert_page_basics(page)
    skip = tab_to(page, "Skip to content")
    assert skip["tag"] == "a"

    type_into(page, "Email", person.email)
    type_into(page, "Password", "not the password")
    tab_to(page, "Continue")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text(re.compile("correct|match|not", re.IGNORECASE))
    assert page.evaluate(FOCUSED)["role"] == "alert"

    type_into(page, "Email", person.email)
    type_into(page, "Password", PASSWORD)
    tab_to(page, "Continue")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/mfa/verify/$"))
    assert_page_basics(page)

    type_into(page, "Code", "000000")
    page.keyboard.press("Enter")
    assert_error_announced_and_tied(page, "Code", re.compile(r"\w"))

    # After the error the page starts at the summary; Tab moves on through its link to the field.
    page.wait_for_timeout(2_500)  # django-otp refuses any code for 1 s after a failure (ThrottlingMixin)
    type_into(page, "Code", totp_code(person.device))
    tab_to(page, "Verify")
    page.keyboard.press("Space")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page).not_to_have_url(re.compile(r"/(login|mfa)/"))
    assert_page_basics(page)


def test_portal_with_one_time_code_by_keyboard(keyboard_page, clinic):
    page = keyboard_page
    patient_sender(clinic)
    message = make_message(clinic, address=f"{unique('patient')}@patients.example")
    with tenant_context(clinic):
        notice = portal_deliver(message, message_content(message))
    page.goto(_path(notice.portal_url))
    expect(page.get_by_role("heading", name="You have a secure message")).to_be_visible()
    assert_page_basics(page)

    tab_to(page, "Send me a code")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("We sent a one-time code")
    (code_mail,) = patient_mail(to=message.to_address)
    code = re.search(r"\b(\d{6})\b", code_mail.body).group(1)

    wrong = "999999" if code != "999999" else "111111"
    type_into(page, "One-time code", wrong)
    tab_to(page, "Confirm and read")
    page.keyboard.press("Enter")
    assert_error_announced_and_tied(page, "One-time code", re.compile("not correct|expired"))

    type_into(page, "One-time code", code)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=PHI_SUBJECT)).to_be_visible()
    assert_page_basics(page)

    type_into(page, "Your reply", "Thank you")
    tab_to(page, "Send reply")
    page.keyboard.press("Space")
    expect(page.get_by_role("status")).to_contain_text("Your reply was sent securely")


def test_unsubscribe_by_keyboard(keyboard_page, clinic):
    page = keyboard_page
    contact = new_contact(clinic)
    topic = services.topics_ensure_system(tenant=clinic)["marketing_newsletters"]
    page.goto(_path(links.unsubscribe_url(contact=contact, topic=topic)))
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe")
    assert_page_basics(page)
    tab_to(page, "Unsubscribe")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Unsubscribe")
    assert_page_basics(page)


def test_preferences_by_keyboard(keyboard_page, clinic):
    page = keyboard_page
    contact = new_contact(clinic)
    topics = services.topics_ensure_system(tenant=clinic)
    newsletter = topics["marketing_newsletters"]
    page.goto(_path(links.preferences_url(contact=contact)))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your email preferences")
    assert_page_basics(page)

    box = page.get_by_role("checkbox", name=newsletter.name)
    before = box.is_checked()
    tab_to(page, newsletter.name, tags=("input",))
    page.keyboard.press("Space")
    assert box.is_checked() is not before
    tab_to(page, "Save preferences")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_be_visible()
    expect(page.get_by_role("checkbox", name=newsletter.name)).to_be_checked(checked=not before)
    assert_page_basics(page)


def test_authorization_signing_by_keyboard(keyboard_page, clinic):
    page = keyboard_page
    contact = new_contact(clinic)
    text = new_text(clinic)
    page.goto(_path(links.authorize_url(contact=contact, text=text)))
    expect(page.get_by_role("heading", level=1)).to_have_text("Please read and sign")
    assert_page_basics(page)

    type_into(page, "Type your full name as your signature", "Pat Example")
    tab_to(page, "Sign authorization")
    page.keyboard.press("Enter")
    assert_error_announced_and_tied(page, "I have read this authorization", re.compile("Tick this box"))

    tab_to(page, "I have read this authorization", tags=("input",))
    page.keyboard.press("Space")
    tab_to(page, "Sign authorization")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you: your authorization is signed")
    assert_page_basics(page)
    with tenant_context(clinic):
        assert Authorization.objects.get(contact=contact).status == "valid"
