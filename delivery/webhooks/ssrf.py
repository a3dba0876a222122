"""Webhook targets are tenant-supplied URLs: the classic SSRF hole. A target is accepted only when
every address its host resolves to is public, and the request then goes to the address we checked
(no second lookup, so DNS rebinding cannot swap in 127.0.0.1) and never follows a redirect.

Refused: loopback, private, link-local (cloud metadata 169.254.169.254), CGNAT, multicast, reserved,
unspecified, IPv4 embedded in IPv6 (mapped ::ffff:, 6to4, Teredo, NAT64) when the IPv4 is not public,
hosts written as bare numbers (decimal, octal, hex, short dotted forms that inet_aton accepts),
userinfo in the URL and unusual ports. `settings.WEBHOOK_ALLOW_PRIVATE_TARGETS` (tests only) lifts
the address rules so tests can talk to a local server.
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

MAX_URL_LENGTH = 2000
ALLOWED_PORTS = frozenset({80, 443}) | frozenset(range(1024, 65536))
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Resolve = Callable[[str, int], list[str]]


class UnsafeTarget(ApplicationError):
    status_code = 400
    title = "Webhook URL refused"


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
    return sorted({info[4][0] for info in infos})


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_is_public(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not address_is_public(str(embedded)):
            return False
        if address.is_site_local:  # deprecated fec0::/10, still routed inside some networks
            return False
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_loopback or address.is_link_local
        or address.is_private or address.is_unspecified
    )  # fmt: skip


def _refuse(reason: str) -> UnsafeTarget:
    return UnsafeTarget(f"This URL cannot receive webhooks: {reason}.", code="webhook_url_unsafe")


def _literal_ip(host: str) -> str | None:
    """A canonical IP literal, or None for a name. Numeric forms that are not canonical are refused."""
    if host.startswith("[") and host.endswith("]"):
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
    port = port or (443 if parts.scheme == "https" else 80)
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
