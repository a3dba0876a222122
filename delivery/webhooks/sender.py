"""POST one signed payload to a checked target: connect to the checked address, verify TLS against
the host name, follow no redirect, read at most a little of the answer."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import ssl
import time
from dataclasses import dataclass

from .ssrf import Target, UnsafeTarget, ensure_connectable

TIMEOUT_SECONDS = 10
MAX_RESPONSE_BYTES = 4096
SIGNATURE_HEADER = "X-HealthMail-Signature"
TIMESTAMP_HEADER = "X-HealthMail-Timestamp"
EVENT_HEADER = "X-HealthMail-Event"
DELIVERY_HEADER = "X-HealthMail-Delivery"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>"; receivers reject stale timestamps (replay)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signatures(secrets: list[str], timestamp: int, body: bytes) -> str:
    """The header value: one `v1=` signature per secret in force (two during a rotation's grace)."""
    return ", ".join(signature(secret, timestamp, body) for secret in secrets)


def signature_valid(
    secret: str, timestamp: str, body: bytes, presented: str, *, tolerance: int = 300
) -> bool:
    """What a receiver does (documented for tenants, used by our tests): any one signature in the
    header made with its secret, and a fresh timestamp."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - stamp) > tolerance:
        return False
    expected = signature(secret, stamp, body)
    return any(hmac.compare_digest(expected, one.strip()) for one in presented.split(","))


@dataclass(frozen=True)
class Result:
    status: int | None
    duration_ms: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self):
        ensure_connectable(self._address, self.port)
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext):
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._context = context

    def connect(self):
        ensure_connectable(self._address, self.port)
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def post(target: Target, *, body: bytes, headers: dict[str, str], ca_file: str | None = None) -> Result:
    started = time.monotonic()
    if target.scheme == "https":
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        connection: http.client.HTTPConnection = _PinnedHTTPSConnection(target, TIMEOUT_SECONDS, context)
    else:
        connection = _PinnedHTTPConnection(target, TIMEOUT_SECONDS)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        status = response.status
        # A redirect is not followed (it could point anywhere); it counts as a failed attempt.
        error = "redirect not followed" if 300 <= status < 400 else ""
        return Result(status, _ms(started), error)
    except UnsafeTarget:
        return Result(None, _ms(started), "refused: not a public address")
    except (OSError, http.client.HTTPException) as failure:
        return Result(None, _ms(started), type(failure).__name__)
    finally:
        connection.close()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
