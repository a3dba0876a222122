"""MTA-STS (RFC 8461): the `_mta-sts` TXT id, the HTTPS policy file, and MX pattern matching."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .contexts import verified_context

MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 §3.2: senders may limit the policy size
MAX_AGE_LIMIT = 31_557_600  # one year, RFC 8461 §3.2
MODES = ("enforce", "testing", "none")


class PolicyError(ValueError):
    """The policy could not be fetched or is not a valid STSv1 policy."""


@dataclass(frozen=True)
class MtaStsPolicy:
    id: str
    mode: str
    mx: tuple[str, ...]
    max_age: int

    def allows(self, host: str) -> bool:
        return any(mx_matches(pattern, host) for pattern in self.mx)


def txt_policy_id(records: tuple[str, ...]) -> str | None:
    """The id of the single `v=STSv1` record; none, or several, mean no MTA-STS (RFC 8461 §3.1)."""
    ids = []
    for record in records:
        fields = [part.strip() for part in record.split(";") if part.strip()]
        if not fields or fields[0].replace(" ", "") != "v=STSv1":
            continue
        tags = dict(field.split("=", 1) for field in fields[1:] if "=" in field)
        ids.append(tags.get("id", "").strip())
    if len(ids) != 1 or not ids[0] or not ids[0].isalnum() or len(ids[0]) > 32:
        return None
    return ids[0]


def parse_policy(text: str, *, policy_id: str) -> MtaStsPolicy:
    values: dict[str, list[str]] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError("malformed policy line")
        values.setdefault(key.strip(), []).append(value.strip())
    if values.get("version") != ["STSv1"]:
        raise PolicyError("policy version is not STSv1")
    mode = (values.get("mode") or [""])[0]
    if mode not in MODES:
        raise PolicyError("policy mode is missing or unknown")
    try:
        max_age = int((values.get("max_age") or [""])[0])
    except ValueError as error:
        raise PolicyError("policy max_age is not a number") from error
    if not 0 <= max_age <= MAX_AGE_LIMIT:
        raise PolicyError("policy max_age out of range")
    mx = tuple(p.lower().rstrip(".") for p in values.get("mx", []))
    if mode != "none" and not mx:
        raise PolicyError("policy lists no mx")
    return MtaStsPolicy(id=policy_id, mode=mode, mx=mx, max_age=max_age)


def mx_matches(pattern: str, host: str) -> bool:
    """`*.example.net` matches exactly one extra leftmost label (RFC 8461 §4.1)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, dot, rest = host.partition(".")
        return bool(head) and bool(dot) and rest == pattern[2:]
    return pattern == host


class PolicyFetcher(Protocol):
    def fetch(self, domain: str) -> str: ...


class HttpsPolicyFetcher:
    """GET https://mta-sts.<domain>/.well-known/mta-sts.txt with PKIX verification, no redirects.

    `connect_to` maps a host name to the (address, port) actually dialled, so tests can serve the
    policy from a loopback HTTPS server while the certificate is still checked against the real name.
    """

    def __init__(
        self,
        *,
        ca_file: str | None = None,
        connect_to: Mapping[str, tuple[str, int]] | None = None,
        timeout: float = 10.0,
    ):
        self.context = verified_context(ca_file)
        self.connect_to = dict(connect_to or {})
        self.timeout = timeout

    def fetch(self, domain: str) -> str:
        host = f"mta-sts.{domain.rstrip('.').lower()}"
        address, port = self.connect_to.get(host, (host, 443))
        try:
            raw = socket.create_connection((address, port), timeout=self.timeout)
            tls = self.context.wrap_socket(raw, server_hostname=host)
        except (OSError, ssl.SSLError) as error:
            raise PolicyError(f"policy host unreachable or unverified: {error.__class__.__name__}") from error
        connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.context)
        connection.sock = tls  # already connected and verified against `host`
        try:
            connection.request("GET", "/.well-known/mta-sts.txt", headers={"Host": host})
            response = connection.getresponse()
            if response.status != 200:  # redirects are not followed (RFC 8461 §3.3)
                raise PolicyError(f"policy fetch answered HTTP {response.status}")
            if not response.getheader("Content-Type", "").lower().startswith("text/plain"):
                raise PolicyError("policy is not text/plain")
            body = response.read(MAX_POLICY_BYTES + 1)
        except (OSError, http.client.HTTPException) as error:
            raise PolicyError(f"policy fetch failed: {error.__class__.__name__}") from error
        finally:
            connection.close()
        if len(body) > MAX_POLICY_BYTES:
            raise PolicyError("policy too large")
        return body.decode("utf-8", "replace")
