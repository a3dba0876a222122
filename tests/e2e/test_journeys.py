"""Issue 18's browser test: a marketer builds a journey with a branch on the Drawflow canvas, a
compliance officer approves it, the marketer activates it; events posted through the API move
contacts on, the delivery engine delivers to the dev mail world's receivers, and the dev mailbox
shows who got which email — a contact whose consent is revoked mid-journey receives nothing more.

The dev mail world is the one `make run` starts (healthmail/devmail: CA, DNS zone, aiosmtpd
receivers writing a Maildir), started here in-process; the engine reads the zone and trusts the CA
through the same settings `make run` sets.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from playwright.sync_api import expect

from consent import services as consent
from delivery.engine.worker import drain
from delivery.models import Stream
from healthmail.accounts.api_keys import api_key_create
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from journeys.definition import STEP_LABELS
from journeys.models import Journey, Position
from journeys.services import engine
from tests.campaigns.conftest import template
from tests.delivery.engine_support import evidence, new_contact, opted_in, verified_sender_domain

from .conftest import browser_sign_in, screenshot, unique

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def dev_mail_world(tmp_path_factory):
    from healthmail.devmail.receivers import start
    from healthmail.devmail.world import mail_world, zone_write

    state = tmp_path_factory.mktemp("dev-mail-world")
    world = mail_world(state, {"tls": _free_port(), "system": _free_port()})
    zone_write(world.zone_file, world)
    controllers = start(list(world.receivers), state / "mail")
    yield world
    for controller in controllers:
        controller.stop()


@pytest.fixture
def mail_settings(settings, dev_mail_world):
    settings.DELIVERY_CA_FILE = dev_mail_world.ca_file
    settings.DELIVERY_RESOLVER = "static"
    settings.DELIVERY_DNS_ZONE_FILE = dev_mail_world.zone_file
    settings.DEV_MAILBOX_DIR = dev_mail_world.maildir
    return dev_mail_world


def _drop(page, source, target) -> None:
    """Drag from a node's output port to another node's input port with the mouse."""
    start, end = source.bounding_box(), target.bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=8)
    page.mouse.up()


def _add_step(page, kind: str, key: str) -> None:
    page.get_by_label("Step type", exact=True).select_option(kind)
    page.get_by_label("Step name", exact=True).fill(key)
    page.get_by_role("button", name="Add step").click()
    label = STEP_LABELS[kind]  # the panel names the kind in words
    expect(page.get_by_role("heading", name=f"Step {key} ({label})")).to_be_visible()


def _node(page, key: str):
    return page.locator(".drawflow-node").filter(has=page.locator("strong", has_text=re.compile(f"^{key}$")))


def _mailbox(page, address: str):
    """The dev mailbox's rows for one address (newest first), as a developer reads them."""
    return page.get_by_test_id("mailbox-row").filter(has_text=address)


def test_build_approve_activate_and_watch_contacts_reach_the_mailbox(
    page, browser, live_server_url, make_person, mail_settings
):
    marketer = make_person(Role.MARKETER)
    officer = make_person(Role.COMPLIANCE_OFFICER, tenant=marketer.tenant)
    tenant = marketer.tenant
    sender_domain, _ = verified_sender_domain(tenant, f"mail.{tenant.slug}.test")
    template(tenant, Actor.system("e2e"), name="Welcome letter", subject="Welcome to the clinic")
    template(tenant, Actor.system("e2e"), name="VIP follow-up", subject="Your follow-up visit")
    name = unique("journey")

    # The marketer builds the journey on the canvas.
    browser_sign_in(page, marketer)
    page.get_by_role("link", name="Journeys").first.click()
    page.get_by_role("link", name="New journey").click()
    page.get_by_role("textbox", name="Name", exact=True).fill(name)
    page.get_by_label("Contacts enter when").select_option("event")
    page.get_by_label("Entry event", exact=True).fill("appointment.booked")
    page.get_by_label("Sender domain", exact=True).select_option(label=sender_domain.domain)
    page.get_by_label("Sender name", exact=True).fill("Synthetic Clinic")

    _add_step(page, "send", "welcome")
    page.get_by_label("Email template", exact=True).select_option(label="Welcome letter")
    page.get_by_label("Purpose", exact=True).select_option("marketing")
    page.get_by_label("Consent topic", exact=True).select_option("marketing_newsletters")
    _add_step(page, "wait_event", "visit")
    page.get_by_label("Event", exact=True).fill("visit.done")
    page.get_by_label("Wait at most", exact=True).fill("1")
    page.get_by_label("Wait at most unit").select_option(label="days")
    _add_step(page, "branch", "check")
    page.get_by_label("Condition", exact=True).select_option("tag")
    page.get_by_label("Tag", exact=True).fill("vip")
    _add_step(page, "send", "vip_note")
    page.get_by_label("Email template", exact=True).select_option(label="VIP follow-up")
    page.get_by_label("Purpose", exact=True).select_option("marketing")
    page.get_by_label("Consent topic", exact=True).select_option("marketing_newsletters")
    _add_step(page, "exit", "done")

    # Connect: one with the mouse on the canvas, the others from the keyboard panel.
    _drop(page, _node(page, "welcome").locator(".output_1"), _node(page, "visit").locator(".input_1"))
    expect(_node(page, "welcome")).to_contain_text("next → visit")
    _node(page, "visit").click()
    page.get_by_label("Next step", exact=True).select_option("check")
    page.get_by_label("If it does not arrive", exact=True).select_option("done")
    _node(page, "check").click()
    page.get_by_label("If yes", exact=True).select_option("vip_note")
    page.get_by_label("If no", exact=True).select_option("done")
    _node(page, "vip_note").click()
    page.get_by_label("Next step", exact=True).select_option("done")
    expect(page.get_by_label("First step", exact=True)).to_have_value("welcome")
    screenshot(page, "journey-canvas")

    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_test_id("dry-run")).to_contain_text("completes the journey")
    expect(page.locator("#drawflow .drawflow-node")).to_have_count(5)  # the canvas is drawn again
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name=f"Journey: {name}")).to_be_visible()
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_test_id("version-status")).to_have_text("In review")

    # The compliance officer approves, in a browser of their own (four eyes).
    officer_context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 900})
    officer_page = officer_context.new_page()
    browser_sign_in(officer_page, officer)
    officer_page.get_by_role("link", name="Journeys").first.click()
    officer_page.get_by_role("link", name=name).first.click()
    officer_page.get_by_label("Comment").fill("Topic and templates checked.")
    officer_page.get_by_role("button", name="Approve").click()
    expect(officer_page.get_by_role("status").first).to_contain_text("Approved")
    officer_context.close()

    page.reload()
    page.get_by_role("button", name="Activate version 1").click()
    expect(page.get_by_test_id("journey-status")).to_have_text("Active")
    with tenant_context(tenant):
        journey = Journey.objects.get(name=name)

    # Three patients: a VIP, one without the tag, and a VIP who withdraws mid-journey.
    def patient(label: str, *, vip: bool):
        contact = new_contact(tenant, f"{unique(label)}@patients.test")
        opted_in(tenant, contact)
        if vip:
            from contacts import tagging

            tagging.contacts_tag(
                tenant=tenant, actor=Actor.system("e2e"), contact_ids=[contact.pk], tag="vip"
            )
        return contact

    vip, plain, revokes = patient("vip", vip=True), patient("plain", vip=False), patient("revokes", vip=True)
    key = api_key_create(
        actor=Actor.system("e2e"), tenant=tenant, name="EHR", scopes=["events:write"], expires_at=None
    ).plaintext
    ehr = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    def post_event(contact, kind: str) -> None:
        body = {"contact_id": str(contact.pk), "type": kind, "id": uuid.uuid4().hex, "data": {}}
        response = ehr.post("/api/v1/events", json.dumps(body), content_type="application/json")
        assert response.status_code == 202, response.content

    def work() -> None:
        """What the marketing workers run. In a thread of its own: Playwright's sync API keeps an
        event loop running in this one, and the delivery engine runs its own."""

        def run() -> None:
            try:
                engine.positions_advance(tenant=tenant)
                drain(tenant_id=tenant.pk, stream=Stream.MARKETING)
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(run).result()

    for contact in (vip, plain, revokes):
        post_event(contact, "appointment.booked")
    work()
    page.goto("/dev/mailbox/")
    for contact in (vip, plain, revokes):
        expect(_mailbox(page, contact.email)).to_have_count(1)
        expect(_mailbox(page, contact.email)).to_contain_text("Welcome to the clinic")
        expect(_mailbox(page, contact.email).get_by_test_id("transport")).to_contain_text("Verified TLS")
    screenshot(page, "journey-mailbox-welcome")

    # The patient withdraws the opt-in; then every visit happens.
    topic = consent.topic_by_key(tenant=tenant, key="marketing_newsletters")
    consent.consent_revoke(tenant=tenant, contact=revokes, topic=topic, evidence=evidence())
    for contact in (vip, plain, revokes):
        post_event(contact, "visit.done")
    work()

    page.goto("/dev/mailbox/")
    expect(_mailbox(page, vip.email)).to_have_count(2)
    expect(_mailbox(page, vip.email).first).to_contain_text("Your follow-up visit")
    expect(_mailbox(page, plain.email)).to_have_count(1)  # the branch's no: nothing more
    expect(_mailbox(page, revokes.email)).to_have_count(1)  # consent revoked: nothing more
    screenshot(page, "journey-mailbox-after-visit")
    with tenant_context(tenant):
        stopped = Position.objects.get(journey=journey, contact=revokes)
    assert (stopped.state, stopped.exit_reason) == ("exited", "send_refused:opt_in_revoked")

    # The step report shows the steps; the contact page shows the VIP's path.
    page.goto(f"/journeys/{journey.pk}/")
    expect(page.get_by_test_id("step-report")).to_contain_text("vip_note")
    page.goto(f"/contacts/{vip.pk}/")
    expect(page.get_by_test_id("journey-history")).to_contain_text(name)
    expect(page.get_by_test_id("journey-history")).to_contain_text("vip_note")


def test_a_template_saved_unfinished_shows_its_problems_at_the_steps_with_and_without_javascript(
    page, browser, live_server_url, make_person
):
    marketer = make_person(Role.MARKETER)
    verified_sender_domain(marketer.tenant, f"mail.{marketer.tenant.slug}.test")
    browser_sign_in(page, marketer)
    page.get_by_role("link", name="Journeys").first.click()
    page.get_by_role("link", name="Post-visit survey and follow-up").click()
    expect(page.locator("#drawflow .drawflow-node")).to_have_count(6)

    page.get_by_role("button", name="Save draft").click()

    # Nothing saved; the two send steps without an email template say so on the canvas.
    expect(page.get_by_test_id("form-errors")).to_contain_text("2 step(s) need attention")
    for key in ("survey", "nudge"):
        expect(_node(page, key)).to_have_class(re.compile(r"\binvalid\b"))
        expect(_node(page, key).locator(".jn-problems")).to_contain_text("Choose the template to send.")
    _node(page, "survey").click()
    expect(page.locator("#step-panel")).to_contain_text("Choose the template to send.")
    screenshot(page, "journey-template-problems")
    with tenant_context(marketer.tenant):
        assert not Journey.objects.exists()

    # Without JavaScript: the same page is a form with the steps as a list and as JSON.
    context = browser.new_context(base_url=live_server_url, java_script_enabled=False)
    plain = context.new_page()
    plain.context.add_cookies(page.context.cookies())
    plain.goto("/journeys/new/?template=post_visit_follow_up")
    expect(plain.locator("#journey-builder")).to_be_hidden()
    expect(plain.get_by_test_id("step-list")).to_contain_text("survey")
    plain.get_by_role("button", name="Save draft").click()
    expect(plain.locator('[data-step="survey"]')).to_contain_text("Choose the template to send.")
    expect(plain.locator('[data-step="nudge"]')).to_contain_text("Choose the template to send.")
    screenshot(plain, "journey-no-javascript")
    context.close()


def test_newer_step_kinds_are_configured_in_the_panel_and_their_problems_shown_on_the_canvas(
    page, make_person
):
    from tests.journeys.conftest import active_journey

    marketer = make_person(Role.MARKETER)
    tenant = marketer.tenant
    recall = active_journey(tenant, name="Annual recall")
    name = unique("ab journey")
    browser_sign_in(page, marketer)
    page.goto("/journeys/new/")
    page.get_by_role("textbox", name="Name", exact=True).fill(name)
    page.get_by_label("Contacts enter when").select_option("manual")

    _add_step(page, "split", "ab")
    page.get_by_label("Winner metric", exact=True).select_option(label="Goal reached")
    page.get_by_label("Path 1 weight", exact=True).fill("70")
    page.get_by_label("Path 1 weight", exact=True).press("Tab")
    _add_step(page, "notify", "tell")
    page.get_by_label("Staff role to notify", exact=True).select_option(label="Compliance officers")
    _add_step(page, "list", "listed")
    page.get_by_label("List", exact=True).fill("recall")
    page.get_by_label("List", exact=True).press("Tab")
    _add_step(page, "jump", "onward")
    page.get_by_label("Jump to", exact=True).select_option(label="another journey")
    page.get_by_label("Journey", exact=True).select_option(label="Annual recall")
    _add_step(page, "exit", "done")

    _drop(page, _node(page, "ab").locator(".output_2"), _node(page, "listed").locator(".input_1"))
    expect(_node(page, "ab")).to_contain_text("path 2 → listed")
    _node(page, "ab").click()
    page.get_by_label("Path 1 goes to", exact=True).select_option("tell")
    _node(page, "tell").click()
    page.get_by_label("Next step", exact=True).select_option("done")
    _node(page, "listed").click()
    page.get_by_label("Next step", exact=True).select_option("onward")
    expect(_node(page, "onward")).to_contain_text("to journey Annual recall")

    # The notification has no subject yet: the server refuses, and says so at that step.
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_test_id("form-errors")).to_contain_text("1 step(s) need attention")
    expect(_node(page, "tell")).to_have_class(re.compile(r"\binvalid\b"))
    expect(_node(page, "tell").locator(".jn-problems")).to_contain_text("Subject: Write a short subject")
    _node(page, "tell").click()
    expect(page.locator("#step-panel")).to_contain_text("Subject: Write a short subject")
    screenshot(page, "journey-new-step-kinds")
    page.get_by_label("Subject", exact=True).fill("Recall list ready")
    page.get_by_label("Subject", exact=True).press("Tab")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name=f"Journey: {name}")).to_be_visible()

    with tenant_context(tenant):
        steps = Journey.objects.get(name=name).versions.get().definition["steps"]
    assert steps["ab"] == {
        "type": "split",
        "metric": "goal",
        "variants": [{"weight": 70, "next": "tell"}, {"weight": 50, "next": "listed"}],
    }
    assert steps["tell"] == {
        "type": "notify",
        "role": "compliance_officer",
        "subject": "Recall list ready",
        "next": "done",
    }
    assert steps["listed"] == {"type": "list", "action": "add", "list": "recall", "next": "onward"}
    assert steps["onward"] == {"type": "jump", "journey_id": str(recall.pk)}


def test_an_engagement_entry_is_chosen_in_the_form_checked_by_the_server_and_saved(page, make_person):
    marketer = make_person(Role.MARKETER)
    name = unique("clicked journey")
    browser_sign_in(page, marketer)
    page.goto("/journeys/new/")
    page.get_by_role("textbox", name="Name", exact=True).fill(name)
    page.get_by_label("Contacts enter when").select_option("engagement")
    _add_step(page, "exit", "done")

    # No engagement chosen: the server refuses and says so next to the field.
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_test_id("field-entry_action")).to_contain_text(
        "Choose the engagement that starts the journey"
    )
    screenshot(page, "journey-engagement-entry-problem")
    with tenant_context(marketer.tenant):
        assert not Journey.objects.filter(name=name).exists()

    page.get_by_label("Entry engagement", exact=True).select_option(label="Clicks a link in an email")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name=f"Journey: {name}")).to_be_visible()
    expect(page.get_by_test_id("entry")).to_have_text(
        "An email opened, clicked or left unopened: Clicks a link in an email"
    )

    with tenant_context(marketer.tenant):
        saved = Journey.objects.get(name=name).versions.get().definition
    assert saved["entry"] == {"kind": "engagement", "action": "clicked"}


def test_a_did_not_open_entry_names_the_email_and_the_days_in_the_form(page, make_person):
    """The marketer chooses "does not open an email within some days", the email (a journey's send
    step, by name) and the days; the server's problem shows at the days until they are given."""
    from tests.campaigns.conftest import person
    from tests.journeys.conftest import activated

    marketer = make_person(Role.MARKETER)
    tenant = marketer.tenant
    domain, _ = verified_sender_domain(tenant, f"mail.{tenant.slug}.test")
    mail = template(tenant, Actor.system("e2e"), name="Newsletter", subject="This month at the clinic")
    newsletter = activated(
        tenant,
        {"marketer": person(tenant, Role.MARKETER), "compliance": person(tenant, Role.COMPLIANCE_OFFICER)},
        {
            "entry": {"kind": "manual"},
            "start": "mail",
            "sender_domain_id": str(domain.pk),
            "sender_name": "Synthetic Clinic",
            "steps": {
                "mail": {"type": "send", "template_id": str(mail.pk), "purpose": "marketing",
                         "topic": "marketing_newsletters", "next": "done"},
                "done": {"type": "exit"},
            },
        },
        name="Monthly newsletter",
    )  # fmt: skip
    name = unique("unopened journey")
    browser_sign_in(page, marketer)
    page.goto("/journeys/new/")
    page.get_by_role("textbox", name="Name", exact=True).fill(name)
    page.get_by_label("Contacts enter when").select_option("engagement")
    page.get_by_label("Entry engagement", exact=True).select_option(
        label="Does not open an email within some days"
    )
    page.get_by_label("Email not opened", exact=True).select_option(label="Monthly newsletter: step mail")
    _add_step(page, "exit", "done")

    # No days given: the server refuses and says so next to the field.
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_test_id("field-entry_days")).to_contain_text(
        "The days without an open are a whole number from 1 to 90."
    )
    screenshot(page, "journey-unopened-entry-problem")
    with tenant_context(tenant):
        assert not Journey.objects.filter(name=name).exists()

    page.get_by_label("Days without an open", exact=True).fill("7")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name=f"Journey: {name}")).to_be_visible()
    expect(page.get_by_test_id("entry")).to_have_text(
        "An email opened, clicked or left unopened: does not open the email of step mail of the journey "
        "Monthly newsletter within 7 days"
    )
    screenshot(page, "journey-unopened-entry")
    with tenant_context(tenant):
        saved = Journey.objects.get(name=name).versions.get().definition
    assert saved["entry"] == {
        "kind": "engagement",
        "action": "not_opened",
        "journey_id": str(newsletter.pk),
        "step": "mail",
        "days": 7,
    }


def test_a_wait_until_a_time_window_is_set_in_the_panel_checked_and_dry_run(page, make_person):
    marketer = make_person(Role.MARKETER)
    tenant = marketer.tenant
    name = unique("window journey")
    browser_sign_in(page, marketer)
    page.goto("/journeys/new/")
    page.get_by_role("textbox", name="Name", exact=True).fill(name)
    page.get_by_label("Contacts enter when").select_option("manual")

    _add_step(page, "wait", "hold")
    page.get_by_label("Wait", exact=True).select_option(label="until a time window")
    page.get_by_label("Window opens at", exact=True).fill("10:00")
    page.get_by_label("Window closes at", exact=True).fill("09:30")  # before it opens
    page.get_by_label("Friday", exact=True).uncheck()
    page.get_by_label("Not before", exact=True).fill("2027-01-04")
    _add_step(page, "exit", "done")
    _node(page, "hold").click()
    page.get_by_label("Next step", exact=True).select_option("done")
    expect(_node(page, "hold")).to_contain_text("until mon tue wed thu 10:00-09:30 from 2027-01-04")

    page.get_by_role("button", name="Save draft").click()
    expect(_node(page, "hold").locator(".jn-problems")).to_contain_text(
        "Window opens at: A window runs from a start to a later end time"
    )
    _node(page, "hold").click()
    page.get_by_label("Window closes at", exact=True).fill("12:00")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name=f"Journey: {name}")).to_be_visible()
    expect(page.get_by_test_id("dry-run")).to_contain_text(
        "waits until mon, tue, wed, thu 10:00-12:00 (contact's time), from 2027-01-04"
    )

    with tenant_context(tenant):
        steps = Journey.objects.get(name=name).versions.get().definition["steps"]
    assert steps["hold"] == {
        "type": "wait",
        "window": {
            "start": "10:00",
            "end": "12:00",
            "days": ["mon", "tue", "wed", "thu"],
            "from_date": "2027-01-04",
        },
        "next": "done",
    }
