"""POST one signed payload to a checked target: connect to the checked address, verify TLS against
the host name, follow no redirect, read at most a little of the answer."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import time
from dataclasses import dataclass

from healthmail.egress.http import pinned_connection
from healthmail.egress.ssrf import Target, UnsafeTarget

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


def post(target: Target, *, body: bytes, headers: dict[str, str], ca_file: str | None = None) -> Result:
    started = time.monotonic()
    connection = pinned_connection(target, timeout=TIMEOUT_SECONDS, ca_file=ca_file)
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
