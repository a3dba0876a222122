"""A marketer builds an email in the block editor, inserts a merge field, previews it at phone width,
sends a test and reads it in the dev mailbox: the HTML that arrived is mrml's rendering of the MJML the
editor saved (sanitized and framed by the one render path every template takes). Every request the
editor page makes stays on our own origin."""

import email
import mailbox
import re
from concurrent.futures import ThreadPoolExecutor
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from playwright.sync_api import expect

from campaigns.models import TemplateContent
from campaigns.templating import html as mail_html
from campaigns.templating.mjml import mjml_render
from campaigns.templating.sandbox import render_string
from delivery.engine.worker import drain
from healthmail.accounts.roles import Role
from healthmail.devmail import receivers
from healthmail.devmail.world import mail_world, zone_write
from healthmail.tenants.context import tenant_context
from tests.delivery.engine_support import verified_sender_domain
from tests.delivery.servers import free_port
from tests.factories import BaaFactory, MembershipFactory, TenantFactory, UserFactory, confirmed_totp

from .conftest import Person, browser_sign_in, screenshot, unique

pytestmark = pytest.mark.browser


@pytest.fixture
def dev_mail(tmp_path, settings):
    """The dev mail world's verified-TLS receiver for patients.test, and the engine pointed at it."""
    world = mail_world(tmp_path, {"tls": free_port()})
    zone_write(world.zone_file, world)
    started = receivers.start(list(world.receivers), Path(world.maildir))
    settings.DEV_MAILBOX_DIR = world.maildir
    settings.DELIVERY_RESOLVER = "static"
    settings.DELIVERY_DNS_ZONE_FILE = world.zone_file
    settings.DELIVERY_CA_FILE = world.ca_file
    yield world
    for controller in started:
        controller.stop()


@pytest.fixture
def marketer(committed) -> Person:
    """A marketer whose own address is served by the dev world's TLS receiver (test sends go to members)."""
    address = f"{unique('marketer')}@patients.test"
    slug = unique("clinic")
    tenant = TenantFactory(name=f"Clinic {slug[-10:]}", slug=slug, postal_address="1 Test Way, Testville")
    BaaFactory(tenant=tenant)
    user = UserFactory(email=address, username=address)
    MembershipFactory(tenant=tenant, user=user, role=Role.MARKETER)
    verified_sender_domain(tenant, f"mail.{slug}.test")
    return Person(email=address, device=confirmed_totp(user), tenant=tenant)


def _deliver(tenant_id):
    """The transactional worker's drain, as Celery would run it."""
    try:
        return drain(tenant_id=tenant_id, stream="transactional", budget_seconds=20)
    finally:
        connection.close()


def _same_origin_only(page, origin: str) -> list[str]:
    foreign: list[str] = []

    def check(request):
        if urlsplit(request.url).scheme in ("data", "blob", "about"):
            return
        if not request.url.startswith(origin + "/"):
            foreign.append(request.url)

    page.on("request", check)
    return foreign


def test_marketer_builds_previews_and_test_sends_an_mjml_email(page, marketer, dev_mail, live_server_url):
    foreign = _same_origin_only(page, live_server_url)
    browser_sign_in(page, marketer)
    page.goto("/campaigns/templates/")
    page.get_by_role("link", name="New email (block editor)").click()
    expect(page.get_by_role("heading", name="New email (block editor)")).to_be_visible()

    frame = page.frame_locator("#gjs iframe.gjs-frame")
    expect(frame.get_by_text("Write your message here.")).to_be_visible()
    expect(frame.get_by_text("added to every message")).to_be_visible()  # the locked legal footer

    page.get_by_label("Name").fill("Spring check-up")
    page.get_by_label("Subject").fill("Time for your check-up")

    # Add a button section (pressing a section adds it before the footer; dragging works as well),
    # then type into the text and insert a merge field at the cursor.
    page.get_by_role("button", name="Button", exact=True).press("Enter")
    expect(frame.get_by_text("Book a visit")).to_be_visible()
    text = frame.get_by_text("Write your message here.")
    text.dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type("Hello ")
    page.get_by_role("button", name="First name").click()
    expect(page.locator("#merge-status")).to_have_text("Inserted {{ contact.first_name }}.")
    page.get_by_role("button", name="Save email").click()
    expect(page.get_by_text(re.compile(r"Saved as version 1"))).to_be_visible(timeout=15_000)
    screenshot(page, "editor")  # docs/screenshots/editor.png

    with tenant_context(marketer.tenant):
        content = TemplateContent.objects.get(
            template__tenant=marketer.tenant, template__name="Spring check-up"
        )
    assert "{{ contact.first_name }}" in content.mjml
    assert "hm-compliance-footer" not in content.mjml  # the placeholder never reaches storage
    assert content.html == mjml_render(content.mjml)

    # Preview at phone width: the frame is 375 px wide and shows the synthetic contact's name.
    page.get_by_role("button", name="Phone").click()
    preview = page.locator("#preview-frame iframe")
    expect(preview).to_have_attribute("title", "Email preview")
    assert preview.bounding_box()["width"] == pytest.approx(375, abs=2)
    expect(page.frame_locator("#preview-frame iframe").get_by_text("Hello Synthetic")).to_be_visible()
    screenshot(page, "block-editor-phone-preview")
    page.get_by_role("button", name="Dark mode").click()
    expect(page.locator("#preview-frame")).to_have_class(re.compile("preview-dark"))

    # Scrolled first: Playwright's scroll-and-click lands while the page is still settling after the
    # preview frame resized, and the click hits nothing.
    page.get_by_role("button", name="Send test").scroll_into_view_if_needed()
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_text("A test message with synthetic data is on its way.")).to_be_visible(
        timeout=15_000
    )
    with ThreadPoolExecutor(1) as pool:  # the engine runs its own event loop; Playwright's holds this thread
        report = pool.submit(_deliver, marketer.tenant.pk).result(timeout=60)
    assert report.claimed == 1, report

    [raw] = [bytes(m) for m in mailbox.Maildir(dev_mail.maildir, factory=None, create=False)]
    received = email.message_from_bytes(raw, policy=policy.default)
    html = received.get_body(preferencelist=("html",)).get_content()
    expected_body = mail_html.sanitize(
        render_string(
            content.html,
            {"contact": {"first_name": "Synthetic"}, "organization": {"name": marketer.tenant.name}},
        )
    )
    assert "mj-column-per-100" in expected_body  # mrml's markup, not a hand-written template
    assert expected_body in html
    assert "Unsubscribe" in html
    assert "1 Test Way" in html

    page.goto("/dev/mailbox/")
    page.get_by_role("link", name=re.compile("Time for your check-up")).click()
    expect(page.get_by_text("Hello Synthetic").first).to_be_attached()
    assert foreign == [], f"requests to other hosts: {foreign}"
