"""The one table that says what a delivery status means for the patient and for the sender.

Every status the platform learns about - an SMTP reply during our own transaction, a DSN
(RFC 3464), a plain-text bounce of another MTA, a complaint (RFC 5965) or a DMARC report
(RFC 7489, RFC 6591) - goes through `classify_status` or `FEEDBACK_TYPES` below and nowhere else.
docs/delivery.md ("Feedback classification") prints the same table for operators.

The categories and what each does:

- hard: the recipient is gone (5.1.1, 5.1.10, 5.1.2...) -> suppress that recipient.
- soft: transient or persistent-transient (4.x.x, 5.2.2 mailbox full, 5.3.x, 5.4.x) -> count; suppress
  only after DELIVERY_SOFT_BOUNCE_STREAK soft bounces in a row.
- sender: policy or authentication refusal of *our* mail (5.7.x: DMARC 5.7.26, SPF 5.7.23, DKIM
  5.7.20-22, reputation, blocklists; 5.6.x and 5.3.4 content) -> never the patient: the sender
  domain's health is marked, the tenant alerted, the stream to that domain paused at a threshold.
- complaint: ARF abuse/fraud/virus/other/opt-out, a provider's complaint loop -> no more marketing.
- auth_report: RFC 6591 auth-failure, DMARC aggregate -> the sender-domain health page only.
- none: delivered/relayed/expanded DSNs, auto-replies (RFC 3834), vacation, ordinary mail, not-spam.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    SENDER = "sender"
    COMPLAINT = "complaint"
    AUTH_REPORT = "auth_report"
    NONE = "none"


@dataclass(frozen=True)
class Verdict:
    category: Category
    status: str = ""  # the enhanced status code it was read from, e.g. "5.7.26"
    cause: str = (
        ""  # for sender-side verdicts: dmarc | spf | dkim | reputation | blocklist | policy | content
    )


# Enhanced status codes (RFC 3463 and the IANA registry, RFC 5248). Longest prefix wins: "5.7.26"
# before "5.7", before "5". The class digit of a 4 is always soft (the sender side of a 4.7.x too is
# told apart below, so a temporary DMARC refusal never counts against the patient).
_TABLE: dict[str, tuple[Category, str]] = {
    "5.1.0": (Category.HARD, ""),  # other address status
    "5.1.1": (Category.HARD, ""),  # bad destination mailbox address
    "5.1.2": (Category.HARD, ""),  # bad destination system address (no such domain)
    "5.1.3": (Category.HARD, ""),  # bad destination mailbox address syntax
    "5.1.4": (Category.SOFT, ""),  # destination mailbox address ambiguous
    "5.1.5": (Category.HARD, ""),  # destination mailbox address valid (used by some for "disabled")
    "5.1.6": (Category.HARD, ""),  # destination mailbox has moved, no forwarding address
    "5.1.7": (Category.SENDER, "policy"),  # bad sender's mailbox address syntax
    "5.1.8": (Category.SENDER, "policy"),  # bad sender's system address
    "5.1.9": (Category.SOFT, ""),  # message relayed to non-compliant mailer
    "5.1.10": (Category.HARD, ""),  # recipient address has null MX (RFC 7505)
    "5.2.0": (Category.SOFT, ""),
    "5.2.1": (Category.HARD, ""),  # mailbox disabled, not accepting messages
    "5.2.2": (Category.SOFT, ""),  # mailbox full: persistent transient (RFC 3463 3.3)
    "5.2.3": (Category.SENDER, "content"),  # message length exceeds administrative limit
    "5.2.4": (Category.SOFT, ""),  # mailing list expansion problem
    "5.3": (Category.SOFT, ""),  # mail system status: the receiving system's trouble
    "5.3.4": (Category.SENDER, "content"),  # message too big for system
    "5.4": (Category.SOFT, ""),  # network and routing
    "5.4.4": (Category.HARD, ""),  # unable to route: the domain has no mail host
    "5.5": (Category.SOFT, ""),  # mail delivery protocol status
    "5.6": (Category.SENDER, "content"),  # message content or media
    "5.7": (Category.SENDER, "policy"),  # security or policy status
    "5.7.1": (Category.SENDER, "policy"),  # delivery not authorized, message refused
    "5.7.7": (Category.SENDER, "content"),  # message integrity failure
    "5.7.17": (Category.HARD, ""),  # mailbox owner has changed (RFC 7293)
    "5.7.18": (Category.HARD, ""),  # domain owner has changed (RFC 7293)
    "5.7.20": (Category.SENDER, "dkim"),  # no passing DKIM signature found
    "5.7.21": (Category.SENDER, "dkim"),  # no acceptable DKIM signature found
    "5.7.22": (Category.SENDER, "dkim"),  # no valid author-matched DKIM signature
    "5.7.23": (Category.SENDER, "spf"),  # SPF validation failed
    "5.7.24": (Category.SENDER, "spf"),  # SPF validation error
    "5.7.25": (Category.SENDER, "reputation"),  # reverse DNS validation failed
    "5.7.26": (Category.SENDER, "dmarc"),  # multiple authentication checks failed (DMARC)
    "5.7.27": (Category.SENDER, "policy"),  # sender address has null MX
    "5.7.28": (Category.SENDER, "reputation"),  # mail flood detected
    "5": (Category.SOFT, ""),  # 5.0.0 or unknown subject: read the text (below)
    "4": (Category.SOFT, ""),
}

# Words of the diagnostic text, for replies without an enhanced code or with a vague one (5.0.0,
# 5.5.0, 5.7.1 used for "user unknown" by some MTAs). Sender-side words win over recipient words: a
# reply naming both a blocklist and the recipient is about our reputation.
_SENDER_WORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bdmarc\b", re.I), "dmarc"),
    (re.compile(r"\bspf\b|sender policy framework", re.I), "spf"),
    (re.compile(r"\bdkim\b|domainkeys", re.I), "dkim"),
    (
        re.compile(r"spamhaus|spamcop|barracuda|\bsorbs\b|block ?list|black ?list|\bRBL\b|\bDNSBL\b", re.I),
        "blocklist",
    ),
    (re.compile(r"reputation|\bpoor\b.*\bsend|rate limit|too many|unsolicited|\bspam\b", re.I), "reputation"),
    (re.compile(r"unauthenticated|authentication (?:check|fail)|not authenticated", re.I), "dmarc"),
)
_GONE_WORDS = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)|mailbox (?:unavailable|"
    r"not found|does not exist)|does not exist|recipient (?:not found|address rejected|unknown|rejected)|"
    r"invalid (?:recipient|mailbox)|address rejected|account (?:has been )?disabled|not our customer|"
    r"RecipNotFound|RecipientNotFound|no mailbox here",
    re.I,
)
_FULL_WORDS = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota exceeded|insufficient (?:system )?storage", re.I
)
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BASIC = re.compile(r"(?<![\d.])([245])\d\d(?:[\s-]|$)")


def enhanced_status(text: str) -> str:
    """The first enhanced status code (RFC 3463) in a reply or diagnostic text, or ""."""
    found = _ENHANCED.search(text or "")
    return ".".join(found.groups()) if found else ""


def _table(status: str) -> tuple[Category, str]:
    parts = status.split(".")
    for length in (3, 2, 1):
        entry = _TABLE.get(".".join(parts[:length]))
        if entry is not None:
            return entry
    return Category.SOFT, ""


def _sender_cause(text: str) -> str:
    return next((cause for pattern, cause in _SENDER_WORDS if pattern.search(text)), "")


def classify_status(
    status: str = "", text: str = "", *, action: str = "", permanent: bool | None = None
) -> Verdict:
    """What a status means. `status` is an enhanced code or ""; `text` the diagnostic or reply
    (read for a code when `status` is empty, and for words when the code is vague); `action` the
    DSN Action field; `permanent` what a non-DSN parser concluded when nothing else is known."""
    action = (action or "").strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return Verdict(Category.NONE, status)
    status = status or enhanced_status(text)
    if not status:
        basic = _BASIC.search(text or "")
        if basic:
            status = f"{basic.group(1)}.0.0"
        elif action == "delayed" or permanent is False:
            status = "4.0.0"
        elif action == "failed" or permanent:
            status = "5.0.0"
        else:
            return Verdict(Category.NONE)
    if action == "delayed" or status.startswith("2."):
        return Verdict(Category.NONE if status.startswith("2.") else Category.SOFT, status)
    category, cause = _table(status)
    words_cause = _sender_cause(text or "")
    if status.startswith("4."):
        # A temporary refusal for sender reasons (4.7.x, "try again, DMARC") is the sender's, never
        # a step in the patient's soft-bounce streak.
        if status.startswith("4.7.") or words_cause:
            return Verdict(Category.SENDER, status, _table("5" + status[1:])[1] or words_cause or "policy")
        return Verdict(Category.SOFT, status)
    if category == Category.SENDER:
        return Verdict(category, status, cause if cause != "policy" else (words_cause or cause))
    vague = status in ("5.0.0", "5.5.0", "5.1.0", "5.5.1", "5.0.1")
    if words_cause and (vague or category == Category.SOFT):
        return Verdict(Category.SENDER, status, words_cause)
    if vague and _FULL_WORDS.search(text or ""):
        return Verdict(Category.SOFT, status)
    if vague and _GONE_WORDS.search(text or ""):
        return Verdict(Category.HARD, status)
    if vague and status == "5.0.0" and permanent is None:
        return Verdict(Category.HARD, status)  # a bare 550 without words: the recipient was refused
    return Verdict(category, status, cause)


# RFC 5965 Feedback-Type values (and RFC 6591's auth-failure, RFC 6650's not-spam).
FEEDBACK_TYPES: dict[str, Category] = {
    "abuse": Category.COMPLAINT,
    "fraud": Category.COMPLAINT,
    "virus": Category.COMPLAINT,
    "other": Category.COMPLAINT,
    "opt-out": Category.COMPLAINT,
    "auth-failure": Category.AUTH_REPORT,
    "not-spam": Category.NONE,
}


def classify_feedback(feedback_type: str) -> Category:
    return FEEDBACK_TYPES.get((feedback_type or "").strip().lower(), Category.COMPLAINT)
