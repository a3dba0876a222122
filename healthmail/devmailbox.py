"""The dev mailbox: what the local SMTP receivers of the mail world kept (healthmail/devmail).

Exists only when settings.DEV_MAILBOX_DIR is set (`make run`); otherwise every page is a 404. A member
sees the mail of their own tenant (the tenant id in Feedback-ID) and system mail (no tenant: sign-in
codes, invitations); a platform admin sees everything. Each message shows its envelope, the receiver
that took it and its TLS session (trace headers the receiver prepended), the delivery headers
(List-Unsubscribe, DKIM-Signature, Feedback-ID), the text, the HTML rendered in a sandboxed frame (no
scripts, no same-origin access) and its source, and, for a portal notice, a link to the portal page.
"""

from __future__ import annotations

import datetime
import mailbox
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from healthmail.content_policy import email_preview_policy
from healthmail.devmail.receivers import RECEIVER_HEADER, TLS_HEADER

LIST_LIMIT = 200
DELIVERY_HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post", "DKIM-Signature", "Feedback-ID")
TRANSPORT_LABELS = {
    "tls": "Verified TLS",
    "plain": "Plain (no STARTTLS)",
    "badcert": "TLS, certificate not trusted",
    "system": "System mail relay",
}
_URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class Summary:
    key: str
    date: datetime.datetime | None
    sender: str
    to: str
    subject: str
    receiver: str = ""  # tls | plain | badcert | system ("" when no receiver trace: older mail)
    tls: str = ""  # "TLSv1.3 <cipher>" or "none"
    tenant_tag: str = ""  # the tenant part of Feedback-ID; "" for system mail

    @property
    def transport(self) -> str:
        label = TRANSPORT_LABELS.get(self.receiver, "")
        if self.receiver == "tls" and (not self.tls or self.tls == "none"):
            return "Plain (STARTTLS not used)"
        return label

    @property
    def is_portal_notice(self) -> bool:
        return self.subject.startswith("You have a secure message")


@dataclass
class Detail:
    summary: Summary
    headers: list[tuple[str, str]]
    envelope_from: str = ""
    envelope_to: list[str] = field(default_factory=list)
    delivery_headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    html_source: str = ""
    attachments: list[tuple[str, str, int]] = field(default_factory=list)
    portal_links: list[str] = field(default_factory=list)
    unsubscribe_url: str = ""


def _box() -> mailbox.Maildir | None:
    """The receivers' Maildir; None when nothing has arrived yet. 404 when not configured."""
    directory = settings.DEV_MAILBOX_DIR
    if not directory:
        raise Http404
    if not (Path(directory) / "cur").is_dir():
        return None
    return mailbox.Maildir(directory, factory=None, create=False)


def _parse(raw: bytes, *, headers_only: bool) -> EmailMessage:
    parser = BytesHeaderParser if headers_only else BytesParser
    return parser(policy=policy.default).parsebytes(raw)


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name, ""))
    except (ValueError, TypeError, IndexError):  # a malformed header is shown as missing, not a 500
        return ""


def _date(message: EmailMessage) -> datetime.datetime | None:
    try:
        value = parsedate_to_datetime(_header(message, "Date"))
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _tenant_tag(message: EmailMessage) -> str:
    """Feedback-ID is campaign:source-type:tenant:sender (delivery/engine/compose.py)."""
    parts = _header(message, "Feedback-ID").split(":")
    return parts[2] if len(parts) == 4 else ""


def _summary(key: str, message: EmailMessage) -> Summary:
    receiver = _header(message, RECEIVER_HEADER).split(";", 1)[0].strip()
    return Summary(
        key,
        _date(message),
        _header(message, "From"),
        _header(message, "To"),
        _header(message, "Subject"),
        receiver=receiver,
        tls=_header(message, TLS_HEADER).strip(),
        tenant_tag=_tenant_tag(message),
    )


def _visible(request: HttpRequest, summary: Summary) -> bool:
    tenant = getattr(request, "tenant", None)
    if tenant is None:  # a platform admin, who belongs to no tenant
        return bool(getattr(request.user, "is_platform_admin", False))
    return summary.tenant_tag in ("", tenant.pk.hex[:12])


def _read(box: mailbox.Maildir, key: str) -> bytes:
    try:
        return box.get_bytes(key)
    except (KeyError, FileNotFoundError, ValueError):
        raise Http404 from None


def mailbox_list(request: HttpRequest) -> HttpResponse:
    box = _box()
    summaries = []
    if box is not None:
        for key in box.iterkeys():
            try:
                summary = _summary(key, _parse(_read(box, key), headers_only=True))
            except Http404:  # removed between listing and reading
                continue
            if _visible(request, summary):
                summaries.append(summary)
    oldest = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    # Maildir keys start with the delivery time, so they order messages without a usable Date.
    summaries.sort(key=lambda s: (s.date or oldest, s.key), reverse=True)
    return render(
        request,
        "devmailbox/list.html",
        {"messages_shown": summaries[:LIST_LIMIT], "total": len(summaries), "limit": LIST_LIMIT},
    )


def _links(text: str, prefix: str) -> list[str]:
    found = [url.rstrip(".,;)") for url in _URL.findall(text)]
    return list(dict.fromkeys(url for url in found if url.startswith(prefix)))


def _detail(key: str, message: EmailMessage) -> Detail:
    detail = Detail(
        summary=_summary(key, message),
        headers=[(name, _safe_str(value)) for name, value in message.items()],
        envelope_from=_header(message, "Return-Path").strip("<>"),
        envelope_to=[_safe_str(value) for value in message.get_all("Delivered-To", [])],
    )
    wanted = {name.lower() for name in DELIVERY_HEADERS}
    detail.delivery_headers = [(n, v) for n, v in detail.headers if n.lower() in wanted]
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    if text_part is not None:
        detail.text = _content(text_part)
    if html_part is not None:
        detail.html_source = _content(html_part)
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True) or b""
        detail.attachments.append((part.get_filename() or "(unnamed)", part.get_content_type(), len(payload)))
    portal_prefix = settings.PUBLIC_BASE_URL.rstrip("/") + "/p/portal/"
    detail.portal_links = _links(detail.text + " " + detail.html_source, portal_prefix)
    unsubscribe = _header(message, "List-Unsubscribe")
    if "One-Click" in _header(message, "List-Unsubscribe-Post"):
        detail.unsubscribe_url = next(iter(_links(unsubscribe, settings.PUBLIC_BASE_URL.rstrip("/"))), "")
    return detail


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except (ValueError, TypeError, IndexError):
        return "(unreadable header)"


def _content(part: MIMEPart) -> str:
    try:
        text: str = part.get_content()  # a text/* part (get_body's choice): its content is a str
    except (LookupError, ValueError):  # unknown charset or broken encoding: show what we can
        payload = part.get_payload(decode=True)  # bytes for a part that is not multipart
        return (payload if isinstance(payload, bytes) else b"").decode("utf-8", errors="replace")
    return text


@email_preview_policy
def mailbox_message(request: HttpRequest, key: str) -> HttpResponse:
    box = _box()
    if box is None:
        raise Http404
    detail = _detail(key, _parse(_read(box, key), headers_only=False))
    if not _visible(request, detail.summary):
        raise Http404  # another tenant's mail
    return render(request, "devmailbox/message.html", {"detail": detail})
