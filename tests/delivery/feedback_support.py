"""Bounce, complaint and DMARC report fixtures (tests/delivery/feedback_mail/, written for these tests
in the shapes of the real MTAs' reports) filled in for one message, and what the classification
table (delivery/inbound/classify.py) says must follow from each."""

from __future__ import annotations

import email.policy
import gzip
import io
import string
import uuid
import zipfile
from dataclasses import dataclass
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from consent.models import Suppression
from delivery.inbound.verp import dmarc_report_address, verp_address
from delivery.models import DeliveryReport, Message, SenderFeedback, Stream
from healthmail.tenants.context import tenant_context

from .engine_support import new_contact, verified_sender_domain
from .outbox_helpers import make_message

MAIL = Path(__file__).parent / "feedback_mail"
HARD, COMPLAINT = Suppression.Reason.HARD_BOUNCE, Suppression.Reason.COMPLAINT
State = Message.State


@dataclass(frozen=True)
class Expect:
    suppression: str | None  # the reason the contact is suppressed for afterwards, or None
    state: str  # the message's state afterwards (it starts queued)
    report: str | None  # the DeliveryReport kind recorded, or None
    health: str | None = None  # the SenderFeedback kind recorded, or None


# The table, per format (docs/delivery.md, "Feedback classification").
EXPECTED: dict[str, Expect] = {
    "postfix_dsn": Expect(HARD, State.BOUNCED, DeliveryReport.Kind.BOUNCE),
    "exim_plain": Expect(HARD, State.BOUNCED, DeliveryReport.Kind.BOUNCE),
    "qmail": Expect(HARD, State.BOUNCED, DeliveryReport.Kind.BOUNCE),
    "opensmtpd_mixed": Expect(HARD, State.BOUNCED, DeliveryReport.Kind.BOUNCE),
    "microsoft_ndr": Expect(HARD, State.BOUNCED, DeliveryReport.Kind.BOUNCE),
    # 552 5.2.2 mailbox full is persistent-transient (RFC 3463): counted, not suppressed.
    "gmail_plain": Expect(None, State.BOUNCED, DeliveryReport.Kind.SOFT_BOUNCE),
    "arf_abuse": Expect(COMPLAINT, State.QUEUED, DeliveryReport.Kind.COMPLAINT),
    "microsoft_complaint": Expect(COMPLAINT, State.QUEUED, DeliveryReport.Kind.COMPLAINT),
    # RFC 6591, sent to postmaster@ quoting only our Message-ID: the sender's health, never the patient.
    "auth_failure": Expect(None, State.QUEUED, None, SenderFeedback.Kind.AUTH_FAILURE),
    "dmarc_reject_dsn": Expect(
        None, State.FAILED, DeliveryReport.Kind.SENDER_POLICY, SenderFeedback.Kind.REJECTION
    ),
    "auto_reply": Expect(None, State.QUEUED, None),
    "vacation": Expect(None, State.QUEUED, None),
    "success_dsn": Expect(None, State.QUEUED, DeliveryReport.Kind.DELIVERED),
    # Another recipient's 5.1.1 in the same report; ours is only delayed.
    "multi_recipient": Expect(None, State.QUEUED, DeliveryReport.Kind.DELAYED),
}


@dataclass
class Case:
    name: str
    message: Message
    contact_id: uuid.UUID
    raw: bytes
    verp: str
    # The envelope recipient the report arrives for (complaints and RFC 6591 reports go to fixed
    # addresses; bounces to the VERP return path).
    rcpt: str


def fill(name: str, *, verp: str, recipient: str, message_id: str, sender: str) -> bytes:
    template = string.Template((MAIL / f"{name}.eml").read_text())
    text = template.substitute(
        VERP=verp, RCPT=recipient, OTHER="someone.else@patients.example", MSGID=message_id, SENDER=sender
    )
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def sender_domain_for(tenant, domain: str):
    with tenant_context(tenant):
        from delivery.models import SenderDomain

        found = SenderDomain.objects.filter(tenant=tenant, domain=domain).first()
    return found or verified_sender_domain(tenant, domain)[0]


def case(tenant, name: str, *, sender: str = "mail.clinic-a.test") -> Case:
    sender_domain = sender_domain_for(tenant, sender)
    address = f"patient.{uuid.uuid4().hex[:10]}@patients.example"
    contact = new_contact(tenant, address)
    stream = Stream.MARKETING if "complaint" in name or "arf" in name else Stream.TRANSACTIONAL
    message = make_message(tenant, address=address, contact_id=contact.pk, stream=stream)
    with tenant_context(tenant):
        Message.objects.filter(pk=message.pk).update(sender_domain=sender_domain)
        message.refresh_from_db()
    prefix = "bounce-m" if stream == Stream.MARKETING else "bounce-t"
    verp = verp_address(prefix=prefix, tenant_id=tenant.pk, message_id=message.pk, domain=sender)
    raw = fill(name, verp=verp, recipient=address, message_id=message.message_id, sender=sender)
    rcpt = {"arf_abuse": "fbl@bounces.healthmail.test", "microsoft_complaint": "fbl@bounces.healthmail.test"}
    rcpt["auth_failure"] = "postmaster@bounces.healthmail.test"
    return Case(name, message, contact.pk, raw, verp, rcpt.get(name, verp))


def aggregate_xml(*, domain: str, report_id: str, passing: int, failing: int) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>receiver.example</org_name>
    <email>noreply-dmarc-support@receiver.example</email>
    <report_id>{report_id}</report_id>
    <date_range><begin>1796515200</begin><end>1796601599</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>quarantine</p><sp>none</sp><pct>100</pct>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.10</source_ip><count>{passing}</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>
    </row>
    <identifiers><header_from>{domain}</header_from></identifiers>
    <auth_results><dkim><domain>{domain}</domain><result>pass</result></dkim>
      <spf><domain>{domain}</domain><result>pass</result></spf></auth_results>
  </record>
  <record>
    <row>
      <source_ip>198.51.100.7</source_ip><count>{failing}</count>
      <policy_evaluated><disposition>quarantine</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated>
    </row>
    <identifiers><header_from>{domain}</header_from></identifiers>
    <auth_results><spf><domain>spoofer.example</domain><result>fail</result></spf></auth_results>
  </record>
</feedback>
""".encode()


def aggregate_mail(xml: bytes, *, compression: str, to: str) -> bytes:
    """An aggregate report as receivers send it: the XML gzip'd or zipped, attached."""
    report = MIMEMultipart()
    report["From"] = "noreply-dmarc-support@receiver.example"
    report["To"] = to
    report["Subject"] = "Report domain: clinic-a.test Submitter: receiver.example Report-ID: <1>"
    report.attach(MIMEText("This is an aggregate report from receiver.example."))
    name = "receiver.example!clinic-a.test!1796515200!1796601599"
    if compression == "gzip":
        part = MIMEApplication(gzip.compress(xml), "gzip", name=f"{name}.xml.gz")
    elif compression == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{name}.xml", xml)
        part = MIMEApplication(buffer.getvalue(), "zip", name=f"{name}.zip")
    else:
        part = MIMEApplication(xml, "xml", name=f"{name}.xml")
    part.add_header("Content-Disposition", "attachment", filename=part.get_param("name"))
    report.attach(part)
    return report.as_bytes(policy=email.policy.SMTP)  # CRLF lines, as on the wire


def dmarc_address(tenant) -> str:
    return dmarc_report_address(tenant_id=tenant.pk, domain="bounces.healthmail.test")


def observed(tenant, item: Case) -> Expect:
    """What the platform did, in the shape of Expect."""
    with tenant_context(tenant):
        reasons = set(
            Suppression.objects.filter(
                tenant=tenant, contact_id=item.contact_id, removed_at__isnull=True
            ).values_list("reason", flat=True)
        )
        state = Message.objects.get(pk=item.message.pk).state
        reports = list(
            DeliveryReport.objects.filter(message_id=item.message.pk).values_list("kind", flat=True)
        )
        health = list(
            SenderFeedback.objects.filter(tenant=tenant, domain=item.message.sender_domain.domain)
            .exclude(kind=SenderFeedback.Kind.AGGREGATE)
            .values_list("kind", flat=True)
        )
    assert len(reasons) <= 1, reasons
    assert len(reports) <= 1, reports
    assert len(health) <= 1, health
    return Expect(
        next(iter(reasons), None), state, reports[0] if reports else None, health[0] if health else None
    )
