"""The dev mailbox: reads what the local SMTP sink (healthmail.devstack.MaildirSink) kept.

Exists only when settings.DEV_MAILBOX_DIR is set (`make run`); otherwise every page is a 404.
Message HTML is never rendered: the page shows the text part, or the HTML source escaped in <pre>.
"""

from __future__ import annotations

import datetime
import mailbox
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

LIST_LIMIT = 200


@dataclass(frozen=True)
class Summary:
    key: str
    date: datetime.datetime | None
    sender: str
    to: str
    subject: str


@dataclass
class Detail:
    summary: Summary
    headers: list[tuple[str, str]]
    text: str = ""
    html_source: str = ""
    attachments: list[tuple[str, str, int]] = field(default_factory=list)


def _box() -> mailbox.Maildir | None:
    """The sink's Maildir; None when it has not received anything yet. 404 when not configured."""
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


def _summary(key: str, message: EmailMessage) -> Summary:
    return Summary(
        key, _date(message), _header(message, "From"), _header(message, "To"), _header(message, "Subject")
    )


def _read(box: mailbox.Maildir, key: str) -> bytes:
    try:
        return box.get_bytes(key)
    except (KeyError, FileNotFoundError):
        raise Http404 from None


def mailbox_list(request: HttpRequest) -> HttpResponse:
    box = _box()
    summaries = []
    if box is not None:
        for key in box.iterkeys():
            try:
                summaries.append(_summary(key, _parse(_read(box, key), headers_only=True)))
            except Http404:  # removed between listing and reading
                continue
    oldest = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    # Maildir keys start with the delivery time, so they order messages without a usable Date.
    summaries.sort(key=lambda s: (s.date or oldest, s.key), reverse=True)
    return render(
        request,
        "devmailbox/list.html",
        {"messages_shown": summaries[:LIST_LIMIT], "total": len(summaries), "limit": LIST_LIMIT},
    )


def _detail(key: str, message: EmailMessage) -> Detail:
    detail = Detail(
        summary=_summary(key, message),
        headers=[(name, _safe_str(value)) for name, value in message.items()],
    )
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    if text_part is not None:
        detail.text = _content(text_part)
    if html_part is not None:
        detail.html_source = _content(html_part)
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True) or b""
        detail.attachments.append((part.get_filename() or "(unnamed)", part.get_content_type(), len(payload)))
    return detail


def _safe_str(value) -> str:
    try:
        return str(value)
    except (ValueError, TypeError, IndexError):
        return "(unreadable header)"


def _content(part: EmailMessage) -> str:
    try:
        return part.get_content()
    except (LookupError, ValueError):  # unknown charset or broken encoding: show what we can
        return (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")


def mailbox_message(request: HttpRequest, key: str) -> HttpResponse:
    box = _box()
    if box is None:
        raise Http404
    message = _parse(_read(box, key), headers_only=False)
    return render(request, "devmailbox/message.html", {"detail": _detail(key, message)})
