"""The RFC 5322 message of one outbox row, DKIM-signed, ready for the transport.

From shows the content's sender name (a campaign's, the tenant's branding; else the tenant's name)
and its sender address (a campaign's; else the stream's) at the verified sender domain; the envelope
sender is the stream's VERP return path (an opaque row id); the Message-ID is the row's, so a resend
after an ambiguous hand-off is recognisably the same message. Every header value goes through
build_message's validation.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import datetime
from email.utils import format_datetime, formataddr

from delivery import dkim
from delivery.models import Message
from delivery.outbox import RenderedContent
from delivery.smtp.message import Prepared, build_message, validate_address, validate_header

from .config import StreamIdentity

# Headers a renderer may add; everything else (From, To, Message-ID...) is the engine's.
RENDERER_HEADERS = ("Reply-To",)
_FEEDBACK_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def feedback_id(message: Message) -> str:
    """Feedback-ID (Gmail FBL): campaign:source-type:tenant:sender; ids only, no PHI."""
    source = _FEEDBACK_UNSAFE.sub("-", message.source_id or "none")[:64]
    kind = _FEEDBACK_UNSAFE.sub("-", message.source_type)
    return f"{source}:{kind}:{message.tenant_id.hex[:12]}:hm-{message.stream}"


def compose(
    *,
    message: Message,
    address: str,
    content: RenderedContent,
    identity: StreamIdentity,
    signing_key: dkim.SigningKey,
    display_name: str,
    now: datetime,
    unsubscribe_headers: dict[str, str] | None = None,
) -> bytes:
    headers = [
        ("From", from_header(display_name, _from_address(content, identity, signing_key.domain))),
        ("To", address),
        ("Subject", content.subject),
        ("Date", format_datetime(now)),
        ("Message-ID", message.message_id),
    ]
    headers += [(name, content.headers[name]) for name in RENDERER_HEADERS if content.headers.get(name)]
    # RFC 8058: both headers, and the DKIM signature covers and over-signs them (dkim.SIGNED_HEADERS).
    headers += list((unsubscribe_headers or {}).items())
    headers.append(("Feedback-ID", feedback_id(message)))
    html = content.html or None
    built = build_simple(headers, text=content.text, html=html) or build_message(
        headers, text=content.text, html=html
    )
    return dkim.sign_message(built, signing_key, timestamp=int(now.timestamp()))


def _from_address(content: RenderedContent, identity: StreamIdentity, domain: str) -> str:
    """The content's sender address (a campaign's) or the stream's, always at the verified domain."""
    return validate_address(f"{content.from_local_part or identity.from_local_part}@{domain}")


def from_header(display_name: str, address: str) -> str:
    """`Name <address>`: an ASCII name quoted where RFC 5322 needs it; any other name as RFC 2047
    encoded words of at most 75 characters (§2), which a reader joins back into the same name."""
    validate_header("From", display_name)  # before any encoding can hide a line break
    if display_name.isascii():
        return formataddr((display_name, address))
    words = " ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in _chunks(display_name))
    return f"{words} <{address}>"


def _chunks(text: str, size: int = 45) -> list[str]:
    """Pieces of at most `size` UTF-8 bytes (45 -> 60 base64 characters + 12 of syntax), cut after a
    space where there is one: readers that wrongly keep the space between encoded words (CPython's
    address parser) then show a doubled space, not one inside a word."""
    pieces, piece = [], ""
    for character in text:
        if len((piece + character).encode()) > size:
            cut = piece.rfind(" ") + 1 or len(piece)
            pieces.append(piece[:cut])
            piece = piece[cut:]
        piece += character
    return [*pieces, piece]


def _quoted_printable(text: str) -> bytes:
    """RFC 2045 quoted-printable of a text part, CRLF line ends (binascii's C encoder)."""
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def _part(subtype: str, text: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode() + _quoted_printable(text)


def build_simple(headers: list[tuple[str, str]], *, text: str, html: str | None = None) -> bytes | None:
    """The same message as delivery.smtp.message.build_message, ~10x faster, for the common case of
    ASCII header values (the email package's header objects and folding cost ~1 ms a message).
    None: not the common case, use build_message. Header values are validated the same way."""
    for name, value in headers:
        validate_header(name, value)
        if not value.isascii() or len(name) + len(value) > 990:
            return None
    head = "".join(f"{name}: {value}\r\n" for name, value in headers) + "MIME-Version: 1.0\r\n"
    if html is None:
        content = head.encode() + _part("plain", text)
    else:
        boundary = f"==============={secrets.randbelow(10**19):019d}=="
        head += f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
        content = (
            f"{head}\r\n--{boundary}\r\n".encode()
            + _part("plain", text)
            + f"\r\n--{boundary}\r\n".encode()
            + _part("html", html)
            + f"\r\n--{boundary}--\r\n".encode()
        )
    # No bare CR/LF can come out of validated headers and binascii's CRLF-converted output; Prepared
    # checks the final bytes again before anything is sent.
    return content


def prepared(
    *, message: Message, address: str, content: bytes, identity: StreamIdentity, sender_domain: str, phi: bool
) -> Prepared:
    return Prepared(
        key=str(message.pk),
        sender=identity.return_path(
            tenant_id=message.tenant_id, message_id=message.pk, sender_domain=sender_domain
        ),
        recipient=address,
        content=content,
        phi=phi,
    )
