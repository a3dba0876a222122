"""Bounces (RFC 3464 DSNs) and complaints (RFC 5965 ARF) built with email.mime, matched by VERP or
Message-ID, applied to message state and the suppression list; malformed input never crashes."""

from __future__ import annotations

import logging
import smtplib
import uuid
from email.message import Message as EmailMessage
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from consent.models import Suppression
from delivery.inbound.parse import parse_report, verp_message_id, verp_return_path
from delivery.inbound.services import inbound_process
from delivery.inbound.smtp import inbound_controller
from delivery.inbound.verp import VerpAddress, verp_parse
from delivery.models import DeliveryReport, Message
from healthmail.crypto import blind
from healthmail.tenants.context import tenant_context
from tests.delivery.servers import free_port

from .outbox_helpers import make_message

pytestmark = pytest.mark.django_db
ADDRESS = "zebediah.q@patients.example"


def _block(**fields) -> EmailMessage:
    block = EmailMessage()
    for name, value in fields.items():
        block[name.replace("_", "-")] = value
    return block


def _original(message_id: str) -> MIMEMessage:
    original = EmailMessage()
    original["Message-ID"] = message_id
    original["Subject"] = "Your results"
    original.set_payload("...")
    return MIMEMessage(original)


def dsn(*, to: str, message_id: str = "<unknown@example>", action="failed", status="5.1.1") -> bytes:
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mx.patients.example"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.attach(MIMEText("Your message could not be delivered."))
    status_part = MIMEBase("message", "delivery-status")
    status_part.set_payload(
        [
            _block(Reporting_MTA="dns; mx.patients.example"),
            _block(
                Final_Recipient=f"rfc822; {ADDRESS}",
                Action=action,
                Status=status,
                Diagnostic_Code=f"smtp; 550 {ADDRESS} unknown",
            ),
        ]
    )
    report.attach(status_part)
    report.attach(_original(message_id))
    return report.as_bytes()


def arf(*, to: str = "fbl@bounces.healthmail.test", mail_from: str = "", message_id: str = "<x@y>") -> bytes:
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "feedback@isp.example"
    report["To"] = to
    report.attach(MIMEText("This is an email abuse report."))
    feedback = MIMEBase("message", "feedback-report")
    fields = "Feedback-Type: abuse\nUser-Agent: ISP-FBL/1.0\nVersion: 1\n"
    if mail_from:
        fields += f"Original-Mail-From: <{mail_from}>\n"
    feedback.set_payload(fields)
    report.attach(feedback)
    report.attach(_original(message_id))
    return report.as_bytes()


def _reload(tenant, message) -> Message:
    with tenant_context(tenant):
        return Message.objects.get(pk=message.pk)


def _suppressed(tenant, reason) -> bool:
    with tenant_context(tenant):
        index = blind.blind_index(tenant, "email", ADDRESS)
        return Suppression.objects.filter(email_index=index, reason=reason, removed_at=None).exists()


def test_verp_round_trip():
    tenant_id, message_id = uuid.uuid4(), uuid.UUID(int=7)
    address = verp_return_path(message_id, "bounces.example", tenant_id=tenant_id)
    assert len(address.partition("@")[0]) <= 64  # RFC 5321 4.5.3.1.1
    assert verp_parse(address) == VerpAddress(message_id, tenant_id)
    assert verp_parse(address.upper()) == VerpAddress(message_id, tenant_id)  # case-insensitive
    assert verp_message_id("someone@example.org") is None
    # Addresses of messages sent before the tenant was part of it are still read (tenant unknown).
    hex_id = "0" * 31 + "7"
    assert verp_parse(f"bounce-t+{hex_id}@bounces.example") == VerpAddress(message_id, None)
    assert verp_message_id(f"bounce-m+{hex_id}@bounces.example").int == 7


def test_hard_bounce_by_verp_marks_bounced_and_suppresses(tenant_a, tenant_b):
    make_message(tenant_b, address=ADDRESS)  # another tenant's message to the same address: untouched
    message = make_message(tenant_a, address=ADDRESS)
    outcome = inbound_process(
        dsn(to=verp_return_path(message.pk, "bounces.healthmail.test", tenant_id=message.tenant_id))
    )
    assert (outcome.reports, outcome.matched) == (1, 1)
    reloaded = _reload(tenant_a, message)
    assert reloaded.state == Message.State.BOUNCED
    assert "5.1.1" in reloaded.state_reason
    assert _suppressed(tenant_a, Suppression.Reason.HARD_BOUNCE)
    assert not _suppressed(tenant_b, Suppression.Reason.HARD_BOUNCE)
    with tenant_context(tenant_a):
        report = DeliveryReport.objects.get(message=message)
    assert (report.kind, report.status, report.matched_by) == ("bounce", "5.1.1", "verp")


def test_bounce_matched_by_original_message_id(tenant_a):
    message = make_message(tenant_a, address=ADDRESS)
    inbound_process(dsn(to="postmaster@bounces.healthmail.test", message_id=message.message_id))
    assert _reload(tenant_a, message).state == Message.State.BOUNCED


def test_envelope_recipient_alone_identifies_the_message(tenant_a):
    message = make_message(tenant_a, address=ADDRESS)
    raw = dsn(to="undisclosed-recipients:;")
    outcome = inbound_process(
        raw, envelope_recipients=[verp_return_path(message.pk, "b.test", tenant_id=message.tenant_id)]
    )
    assert outcome.matched == 1


def test_delayed_dsn_is_recorded_but_not_a_bounce(tenant_a):
    message = make_message(tenant_a, address=ADDRESS)
    inbound_process(
        dsn(
            to=verp_return_path(message.pk, "b.test", tenant_id=message.tenant_id),
            action="delayed",
            status="4.4.7",
        )
    )
    assert _reload(tenant_a, message).state == Message.State.QUEUED
    assert not _suppressed(tenant_a, Suppression.Reason.HARD_BOUNCE)
    with tenant_context(tenant_a):
        assert DeliveryReport.objects.get(message=message).kind == "delayed"


def test_complaint_suppresses_with_complaint_reason(tenant_a):
    message = make_message(tenant_a, address=ADDRESS)
    outcome = inbound_process(
        arf(mail_from=verp_return_path(message.pk, "b.test", tenant_id=message.tenant_id))
    )
    assert outcome.matched == 1
    assert _suppressed(tenant_a, Suppression.Reason.COMPLAINT)
    with tenant_context(tenant_a):
        assert DeliveryReport.objects.get(message=message).kind == "complaint"


def test_complaint_matched_by_message_id(tenant_a):
    message = make_message(tenant_a, address=ADDRESS)
    assert inbound_process(arf(message_id=message.message_id)).matched == 1


def test_unmatched_report_changes_nothing(tenant_a):
    message = make_message(tenant_a, address=ADDRESS)
    outcome = inbound_process(dsn(to=verp_return_path(uuid.uuid4(), "b.test", tenant_id=tenant_a.pk)))
    assert (outcome.reports, outcome.matched) == (1, 0)
    assert _reload(tenant_a, message).state == Message.State.QUEUED


MALFORMED = [
    b"",
    b"\x00\xff\xfe garbage",
    b"Subject: hello\r\n\r\nnot a report",
    b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno boundary at all",
    b'Content-Type: multipart/report; report-type="delivery-status"; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA dns broken\r\n--b--\r\n",
    b'Content-Type: multipart/report; report-type="feedback-report"; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/plain\r\n\r\nonly text\r\n--b--\r\n",
    b'Content-Type: multipart/report; report-type="delivery-status"; boundary="b"\r\n'
    b"To: bounce+zzzz@b.test\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n\r\n\r\n--b--",
    b"Content-Type: multipart/report; report-type=\xff\xfe; boundary=\r\n\r\n--\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_reports_never_crash_and_log_no_content(raw, caplog, tenant_a):
    with caplog.at_level(logging.INFO):
        outcome = inbound_process(raw)
    assert outcome.matched == 0
    assert "garbage" not in caplog.text


def test_parse_reads_each_recipient_block():
    report = parse_report(dsn(to="bounce+" + "a" * 32 + "@b.test", status="5.2.2"))
    [recipient] = report.recipients
    assert (report.format, recipient.action, recipient.status) == ("dsn", "failed", "5.2.2")
    assert recipient.address == ADDRESS
    assert report.message_ids == ("<unknown@example>",)


def test_inbound_smtp_endpoint_accepts_reports_and_refuses_other_mailboxes(tenant_a):
    message = make_message(tenant_a, address=ADDRESS)
    received = []

    def capture(data, recipients):
        # The endpoint's worker thread has its own database connection, which cannot see this test's
        # transaction: capture here, apply below in the test's connection.
        received.append((data, recipients))
        return __import__("delivery.inbound.services", fromlist=["Outcome"]).Outcome(0, 0)

    port = free_port()
    controller = inbound_controller("127.0.0.1", port, process=capture)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            verp = verp_return_path(message.pk, "bounces.healthmail.test", tenant_id=message.tenant_id)
            client.sendmail("", [verp], dsn(to=verp))
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("", ["someone@bounces.healthmail.test"], dsn(to=verp))
    finally:
        controller.stop()
    [(data, recipients)] = received
    assert recipients == [verp]
    assert inbound_process(data, envelope_recipients=recipients).matched == 1
    assert _reload(tenant_a, message).state == Message.State.BOUNCED
