"""Parse a bounce or complaint into plain facts. Never raises on malformed input: anything that does
not read as a report gives an empty list (the caller logs a count, not the content).

VERP: every message goes out with the envelope sender `bounce+<message uuid hex>@<return domain>`
(or a stream-specific prefix such as `bounce-t+` / `bounce-m+`, delivery/engine/config.py), so a DSN
addressed there names its message even when the remote MTA quotes nothing of it.
"""

from __future__ import annotations

import email
import re
import uuid
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import HeaderParser

VERP_LOCAL_PREFIX = "bounce+"
_VERP = re.compile(r"\bbounce(?:-[a-z0-9]{1,16})?\+([0-9a-f]{32})@", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
MAX_REPORT_BYTES = 10 * 1024 * 1024


def verp_return_path(message_id: uuid.UUID, return_domain: str) -> str:
    """The envelope sender (Return-Path) for one message."""
    return f"{VERP_LOCAL_PREFIX}{message_id.hex}@{return_domain}"


def verp_message_id(address: str) -> uuid.UUID | None:
    found = _VERP.search(address or "")
    return uuid.UUID(found.group(1)) if found else None


@dataclass(frozen=True)
class Report:
    kind: str  # bounce | soft_bounce | complaint | delivered
    action: str = ""
    status: str = ""
    verp_ids: tuple[uuid.UUID, ...] = ()
    message_ids: tuple[str, ...] = ()  # RFC 5322 Message-IDs quoted by the report


def _blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [
            {k.lower(): str(v) for k, v in block.items()} for block in payload if isinstance(block, Message)
        ]
    text = payload if isinstance(payload, str) else ""
    return [
        {k.lower(): str(v) for k, v in HeaderParser().parsestr(chunk.strip() + "\n").items()}
        for chunk in re.split(r"\r?\n\s*\r?\n", text)
        if chunk.strip()
    ]


def _original_message_ids(report: Message) -> tuple[str, ...]:
    found: list[str] = []
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                found.extend(_MESSAGE_ID.findall(str(inner["Message-ID"])))
        elif kind == "text/rfc822-headers":
            headers = HeaderParser().parsestr(str(part.get_payload(decode=False)))
            found.extend(_MESSAGE_ID.findall(str(headers.get("Message-ID", ""))))
    return tuple(dict.fromkeys(found))


def _verp_ids(report: Message, envelope_recipients: list[str], extra: list[str]) -> tuple[uuid.UUID, ...]:
    candidates = [*envelope_recipients, *extra]
    for header in ("To", "Delivered-To", "X-Original-To", "Original-Recipient"):
        candidates.extend(str(value) for value in report.get_all(header, []))
    ids = [verp_message_id(candidate) for candidate in candidates]
    return tuple(dict.fromkeys(i for i in ids if i is not None))


def _status_kind(action: str, status: str) -> str:
    if action in ("delivered", "relayed", "expanded"):
        return "delivered"
    if action == "delayed" or status.startswith("4."):
        return "soft_bounce"
    return "bounce" if status.startswith("5.") or action == "failed" else "soft_bounce"


def parse_report(raw: bytes, *, envelope_recipients: list[str] | None = None) -> list[Report]:
    """One Report per recipient of a DSN, one for a complaint, [] for anything else or malformed."""
    if not raw or len(raw) > MAX_REPORT_BYTES:
        return []
    try:
        report = email.message_from_bytes(raw, policy=policy.compat32)
        return _parse(report, envelope_recipients or [])
    except (
        ValueError,
        TypeError,
        LookupError,
        IndexError,
        AttributeError,
        UnicodeError,
        email.errors.MessageError,
    ):
        return []


def _parse(report: Message, envelope_recipients: list[str]) -> list[Report]:
    if report.get_content_type() != "multipart/report":
        return []
    report_type = (report.get_param("report-type") or "").lower()
    message_ids = _original_message_ids(report)
    if report_type == "feedback-report":
        part = next((p for p in report.walk() if p.get_content_type() == "message/feedback-report"), None)
        if part is None:
            return []
        fields = {k: v for block in _blocks(part) for k, v in block.items()}
        extra = [fields.get("original-mail-from", ""), fields.get("original-rcpt-to", "")]
        verp = _verp_ids(report, envelope_recipients, extra)
        if not verp and not message_ids:
            return []
        kind = fields.get("feedback-type", "abuse").strip().lower()[:16]
        return [Report("complaint", action=kind, verp_ids=verp, message_ids=message_ids)]
    if report_type != "delivery-status":
        return []
    part = next((p for p in report.walk() if p.get_content_type() == "message/delivery-status"), None)
    if part is None:
        return []
    blocks = _blocks(part)
    per_message, recipients = (blocks[0] if blocks else {}), blocks[1:]
    extra = [per_message.get("original-envelope-id", "")]
    verp = _verp_ids(report, envelope_recipients, extra)
    if not verp and not message_ids:
        return []
    out = []
    for fields in recipients:
        if "final-recipient" not in fields and "action" not in fields:
            continue
        action = fields.get("action", "").strip().lower()[:16]
        status_match = _STATUS.search(fields.get("status", ""))
        status = ".".join(status_match.groups()) if status_match else ""
        out.append(
            Report(
                _status_kind(action, status),
                action=action,
                status=status,
                verp_ids=verp,
                message_ids=message_ids,
            )
        )
    return out
