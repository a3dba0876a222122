"""Read an inbound message into plain facts: which of our messages it is about (VERP, Message-ID),
what it is (DSN, complaint, authentication report, DMARC aggregate, plain-text bounce, auto-reply)
and the status of each recipient it names. Never raises on malformed input: anything unreadable is a
Report of format "none". What the facts *mean* is decided in classify.py, not here.

Formats: RFC 3464 DSNs (multipart/report; report-type=delivery-status), RFC 5965 ARF and RFC 6591
authentication-failure reports (report-type=feedback-report), Microsoft-style complaints (an attached
message carrying X-HmXmrOriginalRecipient), DMARC aggregate reports (RFC 7489 appendix C; XML, gzip
or zip), RFC 3834 auto-replies, and the plain-text bounces of other MTAs (qmail, Exim, Gmail,
OpenSMTPD, Exchange...) through GNU Mailman's flufl.bounce (plaintext.py).
"""

from __future__ import annotations

import email
import email.utils
import re
import uuid
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import HeaderParser

from . import dmarc, plaintext
from .verp import VerpAddress, dmarc_report_tenant, verp_address, verp_parse

MAX_REPORT_BYTES = 10 * 1024 * 1024
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
_ADDRESS = re.compile(r"[^\s<>;:,\"']+@[^\s<>;,\"']+")
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery|mdaemon", re.IGNORECASE)


def verp_return_path(message_id: uuid.UUID, return_domain: str, *, tenant_id: uuid.UUID) -> str:
    """The envelope sender (Return-Path) for one message of one tenant (tests and tools)."""
    return verp_address(prefix="bounce", tenant_id=tenant_id, message_id=message_id, domain=return_domain)


def verp_message_id(address: str) -> uuid.UUID | None:
    found = verp_parse(address)
    return found.message_id if found else None


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient a report names. `diagnostic` feeds the classification only; it may echo
    addresses, so it is never stored or logged."""

    address: str  # the final (or only) recipient, lower-case
    original: str = ""  # Original-Recipient, if given
    action: str = ""  # failed | delayed | delivered | relayed | expanded ("" in plain-text bounces)
    status: str = ""
    diagnostic: str = ""
    permanent: bool | None = None  # what a plain-text parser concluded


@dataclass(frozen=True)
class Report:
    format: str  # dsn | plaintext | arf | jmrp | dmarc_aggregate | auto_reply | none
    verp: VerpAddress | None = None
    message_ids: tuple[str, ...] = ()
    recipients: tuple[RecipientStatus, ...] = ()
    feedback_type: str = ""  # ARF Feedback-Type
    reported_domain: str = ""  # ARF Reported-Domain (RFC 6591) or the aggregate's policy domain
    dmarc_tenant: uuid.UUID | None = None  # from a dmarc+<tenant>@ envelope recipient
    aggregate: dmarc.Aggregate | None = None
    extra: dict = field(default_factory=dict)


NOTHING = Report("none")


def _address(value: str) -> str:
    """The address of an RFC 3464 address field ("rfc822; a@b") or a header value."""
    value = (value or "").split(";", 1)[-1]
    found = _ADDRESS.search(value)
    return found.group(0).strip(".").lower() if found else ""


def _blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [
            {k.lower(): " ".join(str(v).split()) for k, v in block.items()}
            for block in payload
            if isinstance(block, Message)
        ]
    text = payload if isinstance(payload, str) else ""
    if part.get("Content-Transfer-Encoding", "").lower() in ("base64", "quoted-printable"):
        text = _decoded(part).decode("utf-8", "replace")
    return [
        {
            k.lower(): " ".join(str(v).split())
            for k, v in HeaderParser().parsestr(chunk.strip() + "\n").items()
        }
        for chunk in re.split(r"\r?\n\s*\r?\n", text)
        if chunk.strip()
    ]


def _quoted_headers(report: Message) -> list[Message]:
    """The original message (or its headers) a report quotes."""
    found: list[Message] = []
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(inner, Message):
                found.append(inner)
        elif kind == "text/rfc822-headers":
            found.append(HeaderParser().parsestr(_decoded(part).decode("utf-8", "replace")))
    return found


def _message_ids(quoted: list[Message], text: str = "") -> tuple[str, ...]:
    found: list[str] = []
    for headers in quoted:
        found.extend(_MESSAGE_ID.findall(str(headers.get("Message-ID", ""))))
    for line in re.findall(r"(?im)^message-id:\s*(<[^<>\s]{1,250}>)", text):
        found.append(line)
    return tuple(dict.fromkeys(found))


def _find_verp(candidates: list[str]) -> VerpAddress | None:
    for candidate in candidates:
        found = verp_parse(candidate)
        if found is not None:
            return found
    return None


def _envelope_candidates(report: Message, envelope_recipients: list[str]) -> list[str]:
    candidates = list(envelope_recipients)
    for header in ("To", "Delivered-To", "X-Original-To", "Envelope-To"):
        candidates.extend(str(value) for value in report.get_all(header, []))
    return candidates


def _decoded(part: Message) -> bytes:
    """A non-multipart part's body, transfer encoding undone (b"" when it has none)."""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _text(report: Message, limit: int = 200_000) -> str:
    """The decoded text of every text part (plain-text bounces quote the original there)."""
    chunks = []
    for part in report.walk():
        if part.get_content_maintype() == "text" or part.get_content_type() == "message/delivery-status":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                try:
                    chunks.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
                except LookupError:  # an unknown charset name: the ASCII parts still read
                    chunks.append(payload.decode("utf-8", "replace"))
    return "\n".join(chunks)[:limit]


def parse_report(raw: bytes, *, envelope_recipients: list[str] | None = None) -> Report:
    """What an inbound message is. Malformed or unknown input gives NOTHING."""
    if not raw or len(raw) > MAX_REPORT_BYTES:
        return NOTHING
    envelope_recipients = envelope_recipients or []
    try:
        report = email.message_from_bytes(raw, policy=policy.compat32)
        return _parse(report, envelope_recipients)
    except (
        ValueError,
        TypeError,
        LookupError,
        IndexError,
        AttributeError,
        UnicodeError,
        RecursionError,
        email.errors.MessageError,
    ):
        return NOTHING


def _parse(report: Message, envelope_recipients: list[str]) -> Report:
    envelope = _envelope_candidates(report, envelope_recipients)
    tenant = next((t for t in map(dmarc_report_tenant, envelope) if t is not None), None)
    aggregate = dmarc.aggregate_from_message(report)
    if aggregate is not None:
        return Report(
            "dmarc_aggregate", reported_domain=aggregate.domain, dmarc_tenant=tenant, aggregate=aggregate
        )
    if report.get_content_type() == "multipart/report":
        param = report.get_param("report-type")
        report_type = email.utils.collapse_rfc2231_value(param).lower() if param else ""
        if report_type == "feedback-report":
            return _feedback(report, envelope, tenant)
        if report_type == "delivery-status":
            parsed = _dsn(report, envelope)
            if parsed is not None:
                return parsed
    complaint = _microsoft_complaint(report, envelope)
    if complaint is not None:
        return complaint
    if _is_auto_reply(report):
        return Report("auto_reply", verp=_find_verp(envelope))
    return _plaintext(report, envelope)


def _feedback(report: Message, envelope: list[str], tenant: uuid.UUID | None) -> Report:
    part = next((p for p in report.walk() if p.get_content_type() == "message/feedback-report"), None)
    if part is None:
        return NOTHING
    fields = {k: v for block in _blocks(part) for k, v in block.items()}
    quoted = _quoted_headers(report)
    verp = _find_verp(
        [
            fields.get("original-mail-from", ""),
            *envelope,
            *(str(h.get("Return-Path", "")) for h in quoted),
        ]
    )
    recipient = _address(fields.get("original-rcpt-to", ""))
    return Report(
        "arf",
        verp=verp,
        message_ids=_message_ids(quoted),
        recipients=(RecipientStatus(recipient),) if recipient else (),
        feedback_type=fields.get("feedback-type", "").strip().lower()[:32],
        reported_domain=fields.get("reported-domain", "").strip().lower()[:253],
        dmarc_tenant=tenant,
        extra={"auth_failure": fields.get("auth-failure", "").strip().lower()[:32]},
    )


def _dsn(report: Message, envelope: list[str]) -> Report | None:
    part = next((p for p in report.walk() if p.get_content_type() == "message/delivery-status"), None)
    if part is None:
        return None
    blocks = _blocks(part)
    per_message, recipient_blocks = (blocks[0] if blocks else {}), blocks[1:]
    quoted = _quoted_headers(report)
    verp = _find_verp(
        [
            *envelope,
            per_message.get("original-envelope-id", ""),
            per_message.get("x-postfix-sender", ""),
            *(str(h.get("Return-Path", "")) for h in quoted),
        ]
    )
    recipients = tuple(
        RecipientStatus(
            address=_address(fields.get("final-recipient", "")),
            original=_address(fields.get("original-recipient", "")),
            action=fields.get("action", "").strip().lower()[:16],
            status=fields.get("status", "").strip()[:16],
            diagnostic=fields.get("diagnostic-code", "")[:1000],
        )
        for fields in recipient_blocks
        if "final-recipient" in fields or "action" in fields
    )
    if not recipients:
        return None
    return Report("dsn", verp=verp, message_ids=_message_ids(quoted), recipients=recipients)


def _microsoft_complaint(report: Message, envelope: list[str]) -> Report | None:
    """A complaint-loop report that is not ARF: the complained-about message is attached and names
    its recipient in X-HmXmrOriginalRecipient (Microsoft's JMRP format)."""
    quoted = [h for h in _quoted_headers(report) if h.get("X-HmXmrOriginalRecipient") and h.get("Message-ID")]
    if not quoted:
        return None
    verp = _find_verp([*(str(h.get("Return-Path", "")) for h in quoted), *envelope])
    recipient = _address(str(quoted[0].get("X-HmXmrOriginalRecipient", "")))
    return Report(
        "jmrp",
        verp=verp,
        message_ids=_message_ids(quoted),
        recipients=(RecipientStatus(recipient),) if recipient else (),
        feedback_type="abuse",
    )


def _is_auto_reply(report: Message) -> bool:
    """RFC 3834 Auto-Submitted (other than "no"), or the older vacation markers - unless the sender
    is a mailer daemon (Postfix marks its bounces auto-replied too)."""
    if _DAEMON.search(str(report.get("From", ""))):
        return False
    submitted = str(report.get("Auto-Submitted", "")).strip().lower()
    if submitted and not submitted.startswith("no"):
        return True
    if any(report.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-Vacation")):
        return True
    return str(report.get("Precedence", "")).strip().lower() == "auto_reply"


def _plaintext(report: Message, envelope: list[str]) -> Report:
    text = _text(report)
    failures = plaintext.failures(report, text)
    if not failures:
        return NOTHING
    quoted = _quoted_headers(report)
    verp = _find_verp([*envelope, *(str(h.get("Return-Path", "")) for h in quoted)])
    if verp is None:
        return_paths = re.findall(r"(?im)^return-path:\s*(.+)$", text)
        verp = _find_verp(return_paths)
    recipients = tuple(
        RecipientStatus(address=failure.address, diagnostic=failure.diagnostic, permanent=failure.permanent)
        for failure in failures
    )
    return Report("plaintext", verp=verp, message_ids=_message_ids(quoted, text), recipients=recipients)
