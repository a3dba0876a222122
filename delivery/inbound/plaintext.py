"""Plain-text bounces (everything that is not an RFC 3464 DSN): which recipients failed, and the
text around each that says why.

The recipients come from GNU Mailman's flufl.bounce (qmail QSBMF, Exim, Gmail, Exchange, Yahoo,
Postfix without a DSN part and many more), plus the formats it does not know (OpenSMTPD's
multipart/mixed notice, below). flufl.bounce says permanent or temporary but not the status code, so
the reply quoted next to each address is handed to classify.py with it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

logger = logging.getLogger(__name__)
_WINDOW = 600  # characters after an address that belong to its reason
_OPENSMTPD = re.compile(r"This is the MAILER-DAEMON, please DO NOT REPLY", re.IGNORECASE)
_OPENSMTPD_LINE = re.compile(r"(?m)^\s*<?([^\s<>:@]+@[^\s<>:]+?)>?:\s+(.+)$")


@dataclass(frozen=True)
class Failure:
    address: str
    permanent: bool
    diagnostic: str


def _opensmtpd(text: str) -> dict[str, bool]:
    """OpenSMTPD: "the following list of recipients:" then one "address: reply" line each."""
    if not _OPENSMTPD.search(text):
        return {}
    section = re.split(r"(?im)^below is a copy of the original message", text)[0]
    found: dict[str, bool] = {}
    for address, reply in _OPENSMTPD_LINE.findall(section):
        code = re.match(r"\s*([245])\d\d", reply)
        found[address.lower()] = not (code and code.group(1) == "4")
    return found


def _diagnostic(text: str, address: str) -> str:
    """The text after the address's last mention before the quoted original: where MTAs put the
    remote server's reply."""
    body = re.split(
        r"(?im)^(?:-+ ?(?:this is a copy|below this line|original message)|below is a copy)", text
    )[0]
    lowered = body.lower()
    at = lowered.rfind(address)
    if at < 0:
        return body[:_WINDOW]
    # Some formats name the address and give the reason a few lines on (Gmail): take a window.
    start = lowered.find(address)
    return " ".join(body[start : at + len(address) + _WINDOW].split())[:1000]


def failures(message: Message, text: str) -> list[Failure]:
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 - a third-party heuristic on hostile input must not stop intake
        logger.warning("plain-text bounce detectors failed", exc_info=False)
        temporary, permanent = frozenset(), frozenset()
    found: dict[str, bool] = {}
    for raw, is_permanent in [*((a, False) for a in temporary), *((a, True) for a in permanent)]:
        address = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip().lower()
        if "@" in address:
            found[address] = found.get(address, False) or is_permanent
    if not found:
        found = _opensmtpd(text)
    return [Failure(address, permanent, _diagnostic(text, address)) for address, permanent in found.items()]
