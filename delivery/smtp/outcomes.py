"""What happened to each recipient, and when a deferred one is tried again."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    DELIVERED = "delivered"  # 250 after the final "."
    DEFERRED = "deferred"  # 4xx or a connection problem before the final "": retry later
    BOUNCED = "bounced"  # 5xx: permanent, never retried
    AMBIGUOUS = "ambiguous"  # connection lost after the final "." before the reply (RFC 1047)
    REFUSED = "refused"  # we refused: the TLS requirement was not met; the caller uses the portal


@dataclass(frozen=True)
class TlsEvidence:
    """What the connection proved. No PHI: host names, protocol facts and a certificate digest."""

    mx: str
    port: int
    tls: bool = False
    version: str = ""
    cipher: str = ""
    peer_certificate_sha256: str = ""
    verified: bool = False
    method: str = "none"  # pkix | dane | opportunistic | none
    policy_source: str = ""
    requiretls: bool = False

    def as_dict(self) -> dict:
        return dict(vars(self))  # flat fields: dataclasses.asdict's deep copy costs 10x more


@dataclass(frozen=True)
class Outcome:
    key: str
    status: Status
    code: int | None = None
    reply: str = ""  # the server's text, truncated; may echo the address, so store it encrypted
    reason: str = ""
    evidence: TlsEvidence | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def status_for_code(code: int) -> Status:
    if 200 <= code < 300:
        return Status.DELIVERED
    if 400 <= code < 500:
        return Status.DEFERRED
    return Status.BOUNCED


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential backoff with jitter (Postfix-style), capped, given up after `max_age`.

    The n-th retry waits min(maximum, minimum * factor**(n-1)) ± jitter, never below `minimum`.
    """

    minimum: timedelta = timedelta(minutes=5)
    maximum: timedelta = timedelta(hours=4)
    factor: float = 2.0
    jitter: float = 0.2
    max_age: timedelta = timedelta(days=5)

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        rng = rng or random.SystemRandom()
        base = min(
            self.maximum.total_seconds(), self.minimum.total_seconds() * self.factor ** max(0, attempt - 1)
        )
        spread = base * self.jitter
        seconds = base + rng.uniform(-spread, spread)
        return timedelta(
            seconds=max(self.minimum.total_seconds(), min(seconds, self.maximum.total_seconds()))
        )

    def next_attempt(
        self, *, attempt: int, first_attempt_at: datetime, now: datetime, rng: random.Random | None = None
    ) -> datetime | None:
        """When to try again after failed attempt number `attempt` (1-based); None: give up (expired)."""
        when = now + self.delay(attempt, rng)
        if when - first_attempt_at > self.max_age:
            return None
        return when
