"""Acceptance: the README's first steps against the real `make run` stack (healthmail.devstack run),
not the test server; tests/e2e/make_run.py starts it in its own state directory on a free port.

A newcomer signs in with TOTP, sends the demo campaign and watches it finish, opens the dev mailbox,
sees a message delivered over verified TLS and a portal notice, opens the portal with the one-time
code from the dev mailbox, clicks one-click unsubscribe and sees the contact's consent change; and
an EHR's POST /api/v1/messages reaches its final state with TLS evidence within 60 seconds; and an EHR
registered as a SMART backend client (manage.py smart_client_register, a key pair of its own) gets a
token, upserts a Patient and requests a Communication through fhirclient, reads it back with its
delivery evidence, and the reminder is in the dev mailbox.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from fhirclient.models.communication import Communication
from fhirclient.models.communicationrequest import CommunicationRequest
from fhirclient.models.patient import Patient
from playwright.sync_api import expect

from tests.fhir.examples import communication_request, us_patient
from tests.fhir.smart import Backend, delivery_attempt, fhir_client, new_key, public_jwks

from .conftest import screenshot
from .make_run import INHERITED_OUT, ROOT, StackProcess

pytestmark = pytest.mark.browser
STARTUP_SECONDS = 300


@dataclass
class Stack:
    url: str
    state: Path

    def logins(self) -> dict[str, dict[str, str]]:
        """{role: {email, password, secret, state}} and {"api": {"key": ...}} from demo-logins.txt."""
        text = (self.state / "demo-logins.txt").read_text()
        found: dict[str, dict[str, str]] = {}
        for block in text.split("\n\n"):
            head = re.match(r"^(\w+): (\S+@\S+)$", block.strip().splitlines()[0]) if block.strip() else None
            if head:
                password = re.search(r"password:\s+(\S+)", block).group(1)
                secret = re.search(r"TOTP secret:\s+(\S+)", block).group(1)
                found[head.group(1)] = {
                    "email": head.group(2),
                    "password": password,
                    "secret": secret,
                    "state": str(self.state),  # where the last TOTP step used is kept (_fresh_totp)
                }
        found["api"] = {"key": re.search(r"API key .*: (\S+)", text).group(1)}
        return found

    def manage(self, *args: str) -> str:
        """manage.py against the stack's own database and master key (as an operator would); stdout."""
        env = {k: v for k, v in os.environ.items() if k not in INHERITED_OUT}
        ports = self.state / "ports"
        env.update(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{(ports / 'postgres').read_text()}/healthmail",
            REDIS_URL=f"redis://127.0.0.1:{(ports / 'redis').read_text()}/0",
            DJANGO_SETTINGS_MODULE="healthmail.settings.dev",
            HEALTHMAIL_MASTER_KEY_FILE=str(self.state / "master.key"),
            DEVSTACK_STATE_DIR=str(self.state),
        )
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def api(self, method: str, path: str, key: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def stack() -> Stack:
    """The stack the session started (tests/conftest.py), or one of our own when run alone."""
    process = StackProcess.from_handoff()
    own = process is None
    if own:
        process = StackProcess.start()
    try:
        problem = process.wait_ready(STARTUP_SECONDS)
        if problem:
            pytest.fail(problem)
        yield Stack(process.url, process.state)
    finally:
        if own:
            process.stop()


def _totp(secret: str, *, step_offset: int = 0) -> str:
    from django_otp.oath import totp

    return f"{totp(base64.b32decode(secret), t0=0, step=30, digits=6, drift=step_offset):06d}"


def _fresh_totp(login: dict[str, str]) -> str:
    """A code from a step not used yet for this login: the server refuses a code used once. The stack
    is shared by the xdist workers, which may sign in as the same person at the same moment, so the
    last step used is kept in a locked file in the stack's state directory, not in this process."""
    with open(Path(login["state"]) / f"totp-step-{login['email']}", "a+") as used:
        fcntl.flock(used, fcntl.LOCK_EX)  # released when the file closes
        used.seek(0)
        last = int(used.read() or -1)
        while int(time.time()) // 30 <= last:
            time.sleep(1)
        step = int(time.time()) // 30
        used.seek(0)
        used.truncate()
        used.write(str(step))
        used.flush()
        return _totp(login["secret"])


def _sign_in(page, login: dict[str, str]) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(login["email"])
    page.get_by_label("Password").fill(login["password"])
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/mfa/verify/$"))
    page.get_by_label("Code").fill(_fresh_totp(login))
    page.get_by_role("button", name="Verify").click()
    expect(page).not_to_have_url(re.compile(r"/(login|mfa)/"))


def test_api_send_reaches_a_final_state_with_evidence(stack):
    key = stack.logins()["api"]["key"]
    sent = {}
    for address in ("synthetic.patient.2024.0000@patients.test", "synthetic.patient.2024.0001@example.org"):
        status, body = stack.api(
            "POST",
            "/api/v1/messages",
            key,
            {
                "recipient": {"address": address},
                "purpose": "treatment",
                "content": {"subject": "Your appointment", "html": "<p>See you on {{ data.day }}.</p>"},
                "data": {"day": "Monday"},
            },
        )
        assert status == 202, body
        sent[address.rsplit("@", 1)[1]] = body["id"]
    final = {}
    deadline = time.monotonic() + 60
    while len(final) < len(sent) and time.monotonic() < deadline:
        for domain, message_id in sent.items():
            status, body = stack.api("GET", f"/api/v1/messages/{message_id}", key)
            assert status == 200, body
            if body["status"].startswith("delivered") or body["status"] in ("failed", "bounced", "expired"):
                final[domain] = body
        time.sleep(1)
    assert final["patients.test"]["status"] == "delivered_tls"
    tls = final["patients.test"]["evidence"]["tls"]
    assert (tls["verified"], tls["method"], tls["mx"]) == (True, "pkix", "mx.patients.test")
    assert final["example.org"]["status"] == "delivered_portal"
    assert final["example.org"]["evidence"]["refused"] == [
        {"path": "direct", "reason": "STARTTLS not offered"}
    ]


def test_smart_backend_through_fhirclient_reaches_the_dev_mailbox(stack, browser):
    key = new_key("ES384")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as jwks:
        json.dump(public_jwks(key), jwks)
        jwks.flush()
        out = stack.manage(
            "smart_client_register",
            "--tenant=demo",
            "--name=E2E EHR backend",
            f"--jwks={jwks.name}",
            "--scopes=contacts:read,contacts:write,contacts:phi,messages:send,messages:read",
        )
    backend = Backend(re.search(r"^(\S+)\nGive this client_id", out, re.M).group(1), key, "ES384")
    template_id = stack.manage(
        "shell",
        "-c",
        # the demo's transactional template; rows are tenant-scoped (row-level security)
        "from campaigns.models import Template; from demo.story import TRANSACTIONAL_TEMPLATE;"
        "from healthmail.tenants.context import tenant_context\n"
        "from healthmail.tenants.models import Tenant\n"
        "with tenant_context(Tenant.objects.get(slug='demo')):\n"
        "    print('template', Template.objects.get(name=TRANSACTIONAL_TEMPLATE).pk)",
    )
    template_id = re.search(r"^template ([0-9a-f-]{36})$", template_id, re.M).group(1)
    server = fhir_client(stack.url, backend).server
    assert server.auth.access_token.startswith("hm_")

    tag = uuid.uuid4().hex[:8]
    address = f"fhir.e2e.{tag}@patients.test"  # mx.patients.test: the dev mail world's verified-TLS receiver
    created = Patient(us_patient(mrn=f"MRN-E2E-{tag}", email=address)).create(server)
    again = Patient(us_patient(mrn=f"MRN-E2E-{tag}", email=address)).create(server)
    assert again["id"] == created["id"]  # an upsert: the same MRN is the same patient
    wanted = communication_request(patient_id=created["id"], template_id=template_id, identifier=f"E2E-{tag}")
    try:
        accepted = CommunicationRequest(wanted).create(server)
    except requests.HTTPError as error:  # the OperationOutcome says why
        pytest.fail(f"{error}: {error.response.text[:2000]}")

    search = Communication.where(struct={"based-on": f"CommunicationRequest/{accepted['id']}"})
    communication, attempt = None, {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = search.perform_resources(server)
        assert len(found) <= 1, [c.id for c in found]  # one request, one Communication
        communication = found[0] if found else None
        attempt = delivery_attempt(communication) if communication else {}
        if attempt and communication.status in ("completed", "stopped", "entered-in-error"):
            break
        time.sleep(1)
    assert communication is not None, "no Communication for the request within 60 s"
    assert communication.status == "completed"
    assert communication.subject.reference == f"Patient/{created['id']}"
    assert attempt["mx_host"].valueString == "mx.patients.test"
    assert attempt["smtp_code"].valueInteger == 250

    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        _sign_in(page, stack.logins()["marketer"])
        page.goto("/dev/mailbox/")
        row = page.get_by_test_id("mailbox-row").filter(has_text=address)
        expect(row.filter(has_text="Appointment reminder")).to_have_count(1)
        expect(row.get_by_test_id("transport")).to_have_text(re.compile("^Verified TLS"))
        row.get_by_role("link").first.click()
        expect(page.get_by_test_id("text-body")).to_contain_text("Monday 9:00")
        expect(page.locator("dd", has_text=communication.identifier[0].value).first).to_be_visible()
        screenshot(page, "make-run-fhir-communication")
    finally:
        context.close()


def test_first_steps_in_the_browser(stack, browser):
    logins = stack.logins()
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        _first_steps(page, logins)
    finally:
        screenshot(page, "make-run-first-steps-end")
        context.close()


def _reload_mailbox_until(page, *rows, seconds: int = 60) -> None:
    """The dev mailbox is a static page: reload it until each row is in (workers send a moment later)."""
    deadline = time.monotonic() + seconds
    page.goto("/dev/mailbox/")
    while not all(row.count() for row in rows) and time.monotonic() < deadline:
        page.wait_for_timeout(1000)
        page.goto("/dev/mailbox/")
    for row in rows:
        expect(row).to_be_visible()


def _first_steps(page, logins) -> None:
    _sign_in(page, logins["marketer"])
    page.get_by_role("link", name="Campaigns").first.click()
    page.get_by_role("link", name="Blood pressure check-ups (demo, PHI)").click()  # the PHI campaign
    expect(page.get_by_test_id("audience-exclusions")).to_contain_text("No HIPAA authorization (PHI)")
    page.go_back()
    page.get_by_role("link", name="Flu shots are here (demo)").click()
    expect(page.get_by_test_id("campaign-status")).to_have_text("Approved")
    page.get_by_role("button", name="Schedule").click()  # no date: send now
    expect(page.get_by_test_id("campaign-status")).to_have_text(re.compile("Scheduled|Sending|Sent"))
    page.reload()
    expect(page.get_by_test_id("campaign-status")).to_have_text(re.compile("Sending|Sent"), timeout=30_000)
    expect(page.get_by_test_id("progress-delivered")).not_to_have_text("0", timeout=60_000)
    screenshot(page, "make-run-campaign-progress")

    rows = page.get_by_test_id("mailbox-row")
    campaign_tls = rows.filter(has_text="Flu shots are here").filter(has_text="Verified TLS").first
    notice = rows.filter(has_text="You have a secure message").first
    _reload_mailbox_until(page, campaign_tls, notice)
    screenshot(page, "make-run-dev-mailbox")

    # the portal notice: its link, then the one-time code that arrives in the dev mailbox
    notice.get_by_role("link").click()
    expect(page.get_by_test_id("transport")).to_have_text(re.compile("^Plain"))
    page.get_by_test_id("portal-link").first.click()
    expect(page.get_by_role("heading", name="You have a secure message")).to_be_visible()
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_text("We sent a one-time code")).to_be_visible()
    portal_url = page.url
    # The code goes through the delivery engine from the tenant's verified domain, DKIM-signed (a worker
    # sends it a moment later): reload until it is in.
    code_row = page.get_by_test_id("mailbox-row").filter(has_text="Your code for the secure message").first
    _reload_mailbox_until(page, code_row)
    expect(code_row.get_by_test_id("transport")).not_to_have_text(re.compile("System mail"))
    code_row.get_by_role("link").click()
    expect(page.locator("dd", has_text="d=mail.demo-health.test").first).to_be_visible()  # DKIM-Signature
    code = re.search(r"one-time code is (\d{6})", page.get_by_test_id("text-body").inner_text()).group(1)
    page.goto(portal_url)
    page.get_by_role("textbox", name=re.compile(r"^One-time code")).fill(code)
    page.get_by_role("button", name="Confirm and read").click()
    # the message itself (the demo campaign's or the API test's, whichever notice came first)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile("Flu shots are here|Your appointment")
    )
    expect(page.get_by_role("region", name="Reply securely")).to_be_visible()
    screenshot(page, "make-run-portal")

    # one-click unsubscribe from the message delivered over verified TLS
    page.goto("/dev/mailbox/")
    campaign_tls.get_by_role("link").click()
    expect(page.get_by_test_id("transport")).to_have_text("Verified TLS")
    recipient = page.locator("dd", has_text="@patients.test").first.inner_text().strip()
    page.get_by_role("button", name=re.compile("One-click unsubscribe")).click()
    expect(page.get_by_text(re.compile("unsubscribed", re.I)).first).to_be_visible()

    page.goto("/contacts/")
    page.get_by_label("Find a contact").fill(recipient)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("table").get_by_role("link").first.click()  # names are masked for a marketer
    contact_id = re.search(r"/contacts/([0-9a-f-]{36})/", page.url).group(1)
    page.goto(f"/consent/contacts/{contact_id}/")
    state = page.get_by_role("row").filter(has_text="Newsletters")
    expect(state).to_contain_text(re.compile("opt.?out|revoked|unsubscribed", re.I))
    screenshot(page, "make-run-contact-unsubscribed")


def test_every_role_signs_in_and_finds_their_first_page(stack, browser):
    logins = stack.logins()
    steps = {
        # the product's own sender-domain check, run from the page against the dev DNS zone
        "tenant_admin": lambda page: (
            page.get_by_role("link", name="Sender domains").first.click(),
            page.get_by_role("link", name="mail.demo-health.test").click(),
            page.get_by_role("button", name="Check what is published").click(),
            expect(page.get_by_role("heading", level=1)).to_contain_text("Verified"),
        ),
        "compliance_officer": lambda page: (
            page.get_by_role("link", name="Audit trail").first.click(),
            expect(page.get_by_role("heading", name="Audit trail")).to_be_visible(),
        ),
        "clinical_reviewer": lambda page: (
            page.get_by_role("link", name="Approvals").first.click(),
            expect(page).to_have_url(re.compile(r"/campaigns/approvals/$")),
        ),
        "platform_admin": lambda page: (
            page.get_by_role("link", name="Tenants").first.click(),
            expect(page.get_by_text("Demo Health System").first).to_be_visible(),
        ),
    }
    for role, step in steps.items():
        context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        page = context.new_page()
        try:
            _sign_in(page, logins[role])
            step(page)
            screenshot(page, f"make-run-{role}")
        finally:
            context.close()
