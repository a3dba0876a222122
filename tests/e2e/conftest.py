"""Browser harness: Debian's Chromium driven by Playwright against a live server thread.

The server thread opens its own database connections, so test data must be COMMITTED: browser tests
create it inside `committed` (database access unblocked, autocommit) instead of the rolled-back `db`
fixture, and give every tenant and person a unique name, so nothing needs cleaning up. They run
after all other tests, so committed rows never surprise a test that counts rows.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import fresh_tls_policy_cache
from tests.e2e.axe import AxeAudit
from tests.live_server import served_over_http

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


# Every document (and frame) reports Content-Security-Policy violations to the console, where the
# guard below collects them; Chromium's own "Refused to ..." console errors are collected as well.
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`
    + ` in ${event.documentURI} (${event.sourceFile || "?"}:${event.lineNumber})`);
});
"""
_csp_violations: list[str] = []


# Blocked on purpose: Redoc's footer asks a CDN for its logo; the API docs page's own policy keeps the
# browser from requesting it (healthmail/api/views.py, ApiDocs).
EXPECTED_BLOCKS = ("https://cdn.redoc.ly/redoc/logo-mini.svg",)


def _is_csp_violation(text: str) -> bool:
    if any(blocked in text for blocked in EXPECTED_BLOCKS):
        return False
    return text.startswith("CSP violation:") or "Content Security Policy" in text


def guard_csp(context) -> None:
    """Collect every policy violation in this browser context; the test fails at its end if any."""
    context.add_init_script(CSP_REPORTER)
    context.on(
        "console",
        lambda message: _is_csp_violation(message.text) and _csp_violations.append(message.text),
    )


@pytest.fixture(autouse=True)
def no_csp_violations() -> Iterator[None]:
    """Applies to every page a browser test visits, through `page` or a context of its own."""
    _csp_violations.clear()
    yield
    found, _csp_violations[:] = list(_csp_violations), []
    if found:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(found), pytrace=False)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    with served_over_http(django_db_blocker) as url:
        yield url


@pytest.fixture(scope="session")
def chromium(django_db_setup) -> Iterator:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, which Django takes for an
    # async context and refuses ORM calls in. The test thread only sets up data; it is safe here.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            new_context = browser.new_context

            def guarded_context(*args, **kwargs):
                context = new_context(*args, **kwargs)
                guard_csp(context)
                return context

            browser.new_context = guarded_context  # tests that open their own contexts are guarded too
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# What a page must load from the application itself (the issue's "no script, style or font from
# outside"): images and links may point elsewhere (an email preview shows the sender's images).
OWN_ORIGIN_ONLY = frozenset({"script", "stylesheet", "font"})


class CheckedBrowser:
    """The session's Chromium, but every context it opens runs axe on its pages (tests/e2e/axe.py)
    and records any script, style sheet or font a page asks of another origin."""

    def __init__(self, browser, audit: AxeAudit) -> None:
        self._browser = browser
        self._audit = audit
        self.contexts: list = []
        self.foreign: list[str] = []

    def _watch_origins(self, context, base_url: str | None) -> None:
        # The live server listens on 127.0.0.1 (a context without a base URL names it in full).
        own = urlsplit(base_url).hostname if base_url else "127.0.0.1"

        def seen(request) -> None:
            where = urlsplit(request.url)
            if (
                request.resource_type in OWN_ORIGIN_ONLY
                and where.scheme in ("http", "https")
                and where.hostname != own
            ):
                self.foreign.append(f"{request.resource_type} {request.url}")

        context.on("request", seen)

    def new_context(self, **kwargs):
        context = self._browser.new_context(**kwargs)
        self._watch_origins(context, kwargs.get("base_url"))
        # axe is JavaScript: in a context with JavaScript off it cannot run, and waiting for it would
        # hang the test (Playwright's evaluate never returns there). Such pages are checked with it on.
        if kwargs.get("java_script_enabled", True):
            self._audit.watch(context)
        self.contexts.append(context)
        return context

    def __getattr__(self, name: str):
        return getattr(self._browser, name)


@pytest.fixture
def axe_audit(request) -> AxeAudit:
    return AxeAudit(test_id=request.node.nodeid)


@pytest.fixture
def browser(chromium, axe_audit) -> Iterator[CheckedBrowser]:
    """Every browser test gets this: 0 serious or critical axe violations on every page it visits, or
    the test errors at teardown listing them; the minor and moderate ones go to the triage list."""
    checked = CheckedBrowser(chromium, axe_audit)
    yield checked
    for context in checked.contexts:
        if context.pages:
            context.close()
    axe_audit.write_triage()
    verdict = axe_audit.verdict()
    if verdict:
        pytest.fail(verdict, pytrace=False)
    if checked.foreign:
        pytest.fail(f"pages loaded from other origins: {checked.foreign}", pytrace=False)


@pytest.fixture
def committed(django_db_blocker) -> Iterator[None]:
    """Database access for the test body and the server thread; every write commits at once."""
    with django_db_blocker.unblock(), fresh_tls_policy_cache():
        yield


@pytest.fixture
def page(browser, live_server_url, committed, request) -> Iterator:
    context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("pageerror", lambda error: pytest.fail(f"JavaScript error: {error}"))
    yield page
    try:
        screenshot(page, request.node.name + "-end")
    except PlaywrightTimeout:
        # The whole of a very long page (the API reference) can take longer than the timeout on a
        # busy machine; the last view is enough for the record of how the test ended.
        screenshot(page, request.node.name + "-end", full_page=False)
    context.close()


def screenshot(page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=full_page)


def unique(label: str) -> str:
    return f"e2e-{label}-{uuid.uuid4().hex[:10]}"


@dataclass
class Person:
    email: str
    device: object | None
    tenant: object | None


@pytest.fixture
def make_person(committed):
    """A committed person: `make_person(role)` in a new tenant, `make_person(None, platform_admin=True)`,
    `make_person(role, enrolled=False)` for one who has not set up an authenticator yet."""
    from tests.factories import BaaFactory, MembershipFactory, TenantFactory, UserFactory, confirmed_totp

    def make(role, *, platform_admin: bool = False, enrolled: bool = True, tenant=None) -> Person:
        email = f"{unique('person')}@staff.example.org"
        user = UserFactory(email=email, username=email, is_platform_admin=platform_admin)
        if role is not None and tenant is None:
            slug = unique("clinic")
            tenant = TenantFactory(name=f"Clinic {slug[-10:]}", slug=slug)
            BaaFactory(tenant=tenant)
        if role is not None:
            MembershipFactory(tenant=tenant, user=user, role=role)
        device = confirmed_totp(user) if enrolled else None
        return Person(email=email, device=device, tenant=tenant)

    return make


def browser_sign_in(page, person, password: str | None = None) -> None:
    """Password, then the TOTP code an authenticator app would show now."""
    from playwright.sync_api import expect

    from tests.factories import PASSWORD, totp_code

    page.goto("/login/")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(password or PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/mfa/verify/$"))
    page.get_by_label("Code").fill(totp_code(person.device))
    page.get_by_role("button", name="Verify").click()
