"""Prepared messages and the one place raw header values become bytes (RELIABILITY E2).

Every header value and envelope address is validated BEFORE a message is built: CR, LF and NUL are
refused outright, also when hidden in an RFC 2047 encoded word, so no value can add a header or a
recipient (SMTP smuggling, CVE-2023-51764; the email package folding bugs CVE-2024-6923 and
CVE-2026-1299 cannot be reached because no line break ever gets to it). The built message is then
checked again: CRLF line endings only, and exactly the headers asked for.
"""

from __future__ import annotations

import email.header
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP

# CR, LF, NUL and every other control or Unicode line separator some parser may break a line on.
FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext: printable ASCII except ":"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@" + _LABEL + r"(?:\." + _LABEL + r")+$")
MAX_HEADER_VALUE = 4000
# Headers are written out with RFC 5322's hard limit (998), not the 78-character SHOULD: the email
# package can only fold a long token (the unsubscribe URL of RFC 8058) by turning it into RFC 2047
# encoded words, which makes List-Unsubscribe unusable. Bodies are encoded earlier, under SMTP's 78.
WIRE = SMTP.clone(max_line_length=998)
LEADING_DOT = re.compile(rb"(?m)^\.")


def has_bare_line_break(content: bytes) -> bool:
    """A CR not followed by LF or an LF not preceded by CR. Counting is ~50x faster than the regex on
    a whole message: with no bare one, every CR and every LF belongs to a CRLF."""
    pairs = content.count(b"\r\n")
    return content.count(b"\r") != pairs or content.count(b"\n") != pairs


class UnsafeMessage(ValueError):
    """A header, address or body that could change the message structure or the envelope."""


@dataclass(frozen=True)
class Prepared:
    """One message for one recipient, ready for the wire (already DKIM-signed by the caller).

    `key` is the caller's reference (the outbox row id) and never PHI. `phi` marks content that may
    only travel over verified TLS: such a message is refused rather than sent any other way.
    """

    key: str
    sender: str  # the envelope MAIL FROM (return path, may be a VERP address)
    recipient: str
    content: bytes
    phi: bool = True

    def __post_init__(self):
        # Kept in their validated form (IDNA domains): plain ASCII addr-specs that go on the SMTP
        # command lines as they are.
        object.__setattr__(self, "sender", validate_address(self.sender, allow_empty=True))
        object.__setattr__(self, "recipient", validate_address(self.recipient))
        if has_bare_line_break(self.content) or b"\x00" in self.content:
            raise UnsafeMessage("message content has bare CR/LF or NUL")
        if not self.content.endswith(b"\r\n"):
            raise UnsafeMessage("message content must end with CRLF")


def validate_address(address: str, *, allow_empty: bool = False) -> str:
    """An ASCII addr-spec without quoting or comments (SMTPUTF8 local parts are not supported yet)."""
    if address == "" and allow_empty:
        return address
    local, at, domain = address.rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii") if domain and not domain.isascii() else domain
    except UnicodeError as error:
        raise UnsafeMessage("address domain is not a valid host name") from error
    candidate = f"{local}{at}{domain}"
    if len(candidate) > 254 or not ADDRESS.match(candidate) or ".." in local or local.startswith("."):
        raise UnsafeMessage("address is not a plain addr-spec")
    return candidate


def validate_header(name: str, value: str) -> None:
    if not HEADER_NAME.match(name):
        raise UnsafeMessage("header name is not printable ASCII without a colon")
    if FORBIDDEN.search(value):
        raise UnsafeMessage(f"{name} header value contains CR, LF, NUL or another control character")
    if len(value) > MAX_HEADER_VALUE:
        raise UnsafeMessage(f"{name} header value is too long")
    if "=?" in value:
        # Encoded words decode into the value a receiving client shows and may re-fold.
        try:
            decoded = "".join(
                part.decode(charset or "ascii", "replace") if isinstance(part, bytes) else part
                for part, charset in email.header.decode_header(value)
            )
        except (ValueError, LookupError) as error:
            raise UnsafeMessage(f"{name} header has a malformed encoded word") from error
        if FORBIDDEN.search(decoded):
            raise UnsafeMessage(f"{name} header hides CR, LF or NUL in an encoded word")


def build_message(headers: list[tuple[str, str]], *, text: str, html: str | None = None) -> bytes:
    """Headers (validated, in order) + a text part (+ an HTML alternative) as CRLF bytes."""
    for name, value in headers:
        validate_header(name, value)
    message = EmailMessage(policy=SMTP)
    for name, value in headers:
        message[name] = value
    message.set_content(_normalize_body(text), cte="quoted-printable")
    if html is not None:
        message.add_alternative(_normalize_body(html), subtype="html", cte="quoted-printable")
    content = message.as_bytes(policy=WIRE)
    builder_owned = ("mime-version", "content-")
    _check_built(
        content, expected=sum(1 for name, _ in headers if not name.lower().startswith(builder_owned))
    )
    return content


def _normalize_body(text: str) -> str:
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")


def _check_built(content: bytes, *, expected: int) -> None:
    if has_bare_line_break(content):
        raise UnsafeMessage("built message has a bare CR or LF")
    head = content.split(b"\r\n\r\n", 1)[0]
    fields = [line for line in head.split(b"\r\n") if line and line[:1] not in (b" ", b"\t")]
    # MIME-Version and Content-* are added by the builder itself.
    ours = [f for f in fields if not f.lower().startswith((b"mime-version:", b"content-"))]
    if len(ours) != expected:
        raise UnsafeMessage("built message has an unexpected number of headers")


def dot_stuff(content: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency plus the end-of-data marker."""
    if content.startswith(b".") or b"\n." in content:
        content = LEADING_DOT.sub(b"..", content)
    return content + b".\r\n"
