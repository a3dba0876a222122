"""What makes a production configuration unsafe, checked from plain setting values.

One list of rules, used twice: production settings refuse to start when any of them fails
(healthmail/settings/production.py), and `manage.py check --deploy` reports them as errors under any
settings module (healthmail/checks.py). Nothing here imports models: settings import it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# RFC 1035 section 2.3.1 labels (letters, digits, inner hyphens), at most 63 characters each.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Names that reach only this machine: a receiver checking the EHLO name against the PTR record of
# the source IP finds nothing, and several treat the greeting as forged (RFC 5321 section 4.1.4).
_LOCAL_NAMES = ("localhost", "localdomain", "local")


@dataclass(frozen=True)
class Problem:
    id: str  # a stable check id, e.g. "healthmail.E001"
    message: str
    hint: str


def ehlo_problem(name: str) -> str:
    """Why `name` cannot be the EHLO greeting of a production sender, or "" when it can."""
    text = (name or "").strip().rstrip(".").lower()
    if not text:
        return "is empty"
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    else:
        return "is an IP address, not a host name"
    labels = text.split(".")
    if labels[-1] in _LOCAL_NAMES or text.startswith("localhost"):
        return "names this machine only (localhost)"
    if len(labels) < 2:
        return "is not a fully qualified domain name (it needs a domain, e.g. mta1.example.org)"
    if len(text) > 253 or not all(_LABEL.match(label) for label in labels):
        return "is not a valid host name (letters, digits and inner hyphens, dot-separated)"
    if labels[-1].isdigit():
        return "is not a fully qualified domain name (the last label is numeric)"
    return ""


def production_problems(values: Mapping[str, Any]) -> list[Problem]:
    """Every unsafe value among production settings (an empty list: safe to start)."""
    problems: list[Problem] = []

    def add(code: str, message: str, hint: str) -> None:
        problems.append(Problem(f"healthmail.{code}", message, hint))

    if not values.get("SECRET_KEY"):
        add("E001", "DJANGO_SECRET_KEY is not set.", "Set a long random DJANGO_SECRET_KEY.")
    if not (values.get("HEALTHMAIL_MASTER_KEY") or values.get("HEALTHMAIL_MASTER_KEY_FILE")):
        add(
            "E002",
            "No master key: PHI cannot be encrypted.",
            "Set HEALTHMAIL_MASTER_KEY or HEALTHMAIL_MASTER_KEY_FILE (docs/operations.md).",
        )
    if values.get("DEBUG"):
        add("E003", "DEBUG is on: error pages would show settings and data.", "Unset DJANGO_DEBUG.")
    for name in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        if not values.get(name):
            add("E004", f"{name} is off: the cookie would travel over plain HTTP.", f"Unset {name} (True).")
    base_url = str(values.get("PUBLIC_BASE_URL") or "")
    if urlsplit(base_url).scheme != "https" or not urlsplit(base_url).hostname:
        add(
            "E005",
            f"PUBLIC_BASE_URL {base_url!r} is not an https:// URL: links in mail (portal, invitations) "
            "would send codes and sessions in the clear.",
            "Set PUBLIC_BASE_URL to the https address of the reverse proxy.",
        )
    if values.get("WEBHOOK_ALLOW_PRIVATE_TARGETS"):
        add(
            "E006",
            "WEBHOOK_ALLOW_PRIVATE_TARGETS is on: tenants could make the server call internal addresses.",
            "Unset WEBHOOK_ALLOW_PRIVATE_TARGETS (it exists for tests and the local mail world).",
        )
    ehlo = str(values.get("DELIVERY_EHLO_HOSTNAME") or "")
    reason = ehlo_problem(ehlo)
    if reason:
        add(
            "E007",
            f"DELIVERY_EHLO_HOSTNAME {ehlo!r} {reason}: receivers would distrust every message.",
            "Set DELIVERY_EHLO_HOSTNAME to the sending host's FQDN, the name its IP's PTR record gives.",
        )
    return problems
