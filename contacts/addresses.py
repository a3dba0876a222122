"""The one rule for a patient's email address, shared by the importer, the API and the delivery engine,
so an address is refused at intake with a reason instead of being accepted and failing later.

Accepted: what RFC 5322 calls a dot-atom local part and a domain name that can receive mail from the
internet. Refused, and why:
- longer than 254 characters, or a local part longer than 64 (RFC 5321 §4.5.3.1: servers may refuse);
- a quoted local part (`"john doe"@example.org`): legal, but rare enough that it is far more often a
  typo or an attack on a downstream parser than a real mailbox;
- an address literal (`user@[192.0.2.1]`): mail goes to domains, whose MX, TLS policy and reputation
  we check; an IP address has none of them;
- a domain without a dot (`user@localhost`, `user@intranet`): not resolvable on the internet
  (Django's own validator lets `localhost` through, which is why this module exists);
- a special-use name that never receives internet mail: `localhost` and `*.localhost`, `*.invalid`
  (RFC 2606, RFC 6761) and `*.local` (multicast DNS, RFC 6762).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

MAX_ADDRESS = 254
MAX_LOCAL_PART = 64
_SPECIAL_USE_SUFFIXES = (".localhost", ".invalid", ".local")
_syntax = EmailValidator(allowlist=[])  # Django's syntax check, without its `localhost` exception


def domain_problem(domain: str) -> str | None:
    """Why mail to `domain` can never be delivered, or None."""
    name = domain.lower()
    if name.startswith("["):
        return "names an IP address instead of a domain"
    if "." not in name.strip("."):
        return "has a domain without a dot, which cannot receive mail from the internet"
    if name == "localhost" or name.endswith(_SPECIAL_USE_SUFFIXES):
        return "has a special-use domain that never receives internet mail"
    return None


def address_problem(address: str) -> str | None:
    """Why `address` is refused (a phrase after "The address …"), or None when it is acceptable."""
    if len(address) > MAX_ADDRESS:
        return f"is longer than {MAX_ADDRESS} characters"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return "is not a valid email address"
    if local.startswith('"'):
        return "has a quoted local part, which we do not accept"
    if len(local) > MAX_LOCAL_PART:
        return f"has a part before the @ longer than {MAX_LOCAL_PART} characters"
    problem = domain_problem(domain)
    if problem is not None:
        return problem
    try:
        _syntax(address)
    except ValidationError:
        return "is not a valid email address"
    return None


def validate_address(address: str) -> None:
    """The rule as a Django validator (forms, DRF serializer fields)."""
    problem = address_problem(address)
    if problem is not None:
        raise ValidationError(f"The address {problem}.", code="invalid_address")
