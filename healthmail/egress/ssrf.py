"""Webhook targets are tenant-supplied URLs: the classic SSRF hole. A target is accepted only when
every address its host resolves to is public, and the request then goes to the address we checked
(no second lookup, so DNS rebinding cannot swap in 127.0.0.1) and never follows a redirect.

Refused: every IANA special-purpose address and the cloud metadata/host-agent endpoints (our own
tables, addresses.py - never `ipaddress.is_private`, which differs between Python versions), IPv4
embedded in IPv6 (mapped, compatible; 6to4 and NAT64 when the IPv4 is not public), hosts written as
bare numbers (decimal, octal, hex, short dotted forms that inet_aton accepts), userinfo in the URL,
port 0, ports above 65535 and unusual ports. The connection itself checks the address again
(`ensure_connectable`), so nothing but a checked public address is ever dialled.
`settings.WEBHOOK_ALLOW_PRIVATE_TARGETS` (tests only) lifts the address rules so tests can talk to a
local server.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from healthmail.errors import ApplicationError

from .addresses import address_is_public, port_allowed

__all__ = ["Target", "UnsafeTarget", "address_is_public", "ensure_connectable", "resolve_target"]

MAX_URL_LENGTH = 2000
ALLOWED_PORTS = frozenset({80, 443}) | frozenset(range(1024, 65536))
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

Resolve = Callable[[str, int], list[str]]


class UnsafeTarget(ApplicationError):
    status_code = 400
    title = "Webhook URL refused"

    def __init__(self, reason: str):
        super().__init__(f"This URL cannot receive webhooks: {reason}.", code="webhook_url_unsafe")
        self.reason = reason  # without the webhook wording: callers for other purposes word it their way


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (Host header, TLS server name)
    port: int
    path: str  # path + query
    address: str  # the checked IP we connect to


def private_allowed() -> bool:
    return bool(getattr(settings, "WEBHOOK_ALLOW_PRIVATE_TARGETS", False))


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})  # an IPv4 or IPv6 sockaddr starts with the address


def _refuse(reason: str) -> UnsafeTarget:
    return UnsafeTarget(reason)


def _literal_ip(host: str) -> str | None:
    """A canonical IP literal, or None for a name. Numeric forms that are not canonical are refused."""
    if host.startswith("[") and host.endswith("]"):
        if "%" in host:
            raise _refuse("IPv6 zone identifiers are not allowed")
        try:
            return str(ipaddress.IPv6Address(host[1:-1].split("%", 1)[0]))
        except ValueError:
            raise _refuse("the IPv6 address is not valid") from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    # 2130706433, 0x7f000001, 0177.0.0.1, 127.1: all mean 127.0.0.1 to inet_aton and some HTTP stacks.
    if re.fullmatch(r"[0-9a-fx.]+", host) and not re.search(r"[g-wyz]", host):
        if re.fullmatch(r"[0-9.x]+", host) or host.startswith("0x") or ".0x" in host:
            raise _refuse("write the host as a name or a standard address")
    return None


def parse_target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a syntactically acceptable URL, or UnsafeTarget."""
    if len(url) > MAX_URL_LENGTH or any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise _refuse("it is too long or contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("it is not a valid URL") from None
    allowed_schemes = ("https", "http") if private_allowed() else ("https",)
    if parts.scheme not in allowed_schemes:
        raise _refuse("use an https:// URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _refuse("credentials in the URL are not allowed (use the signing secret)")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise _refuse("it has no host")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    elif not port_allowed(port):
        raise _refuse("the port must be between 1 and 65535")
    if port not in ALLOWED_PORTS and not private_allowed():
        raise _refuse("this port is not allowed")
    if parts.fragment:
        raise _refuse("fragments are not sent")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc_host = parts.netloc.rsplit("@", 1)[-1]
    bracketed = netloc_host.startswith("[")
    return parts.scheme, f"[{host}]" if bracketed else host, port, path


def resolve_target(url: str, *, resolve: Resolve = system_resolve) -> Target:
    """Validate the URL and resolve its host; every resolved address must be public."""
    scheme, host, port, path = parse_target(url)
    literal = _literal_ip(host)
    if literal is not None:
        addresses = [literal]
    else:
        labels = host.split(".")
        if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
            raise _refuse("the host name is not valid")
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".arpa")):
            raise _refuse("internal host names are not allowed")
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError):
            raise _refuse("the host name does not resolve") from None
        if not addresses:
            raise _refuse("the host name does not resolve")
    if not private_allowed():
        bad = [a for a in addresses if not address_is_public(a)]
        if bad:
            raise _refuse("it points to a private, loopback or reserved address")
    return Target(scheme=scheme, host=host.strip("[]"), port=port, path=path, address=addresses[0])


def ensure_connectable(address: str, port: int) -> None:
    """The last check, right before connect(): the address we are about to dial is public and the
    port a real one. Raises UnsafeTarget (an OSError is not enough: it would read as a network fault)."""
    if not port_allowed(port):
        raise _refuse("the port must be between 1 and 65535")
    if not private_allowed() and not address_is_public(address):
        raise _refuse("it points to a private, loopback or reserved address")
