"""The engine's rules, as pure functions: which path a message takes, and what an outcome makes of it.

Paths: DIRECT (the content, over verified TLS unless the message is non-PHI OPPORTUNISTIC mail),
PORTAL (the content is held in the secure portal; a notice without PHI is sent), WAIVER (the patient
asked for unencrypted email and the tenant honours such requests: the only way PHI may leave without
verified TLS). Never downgrade: a DIRECT message the transport refused goes to the portal, the
waiver or fails; it is never retried in the clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from delivery.models import EncryptionPolicy, Message
from delivery.smtp.outcomes import Outcome, RetrySchedule, Status

State = Message.State

# Deferrals of messages that never started a transaction: retried soon, without backoff, because a
# retry cannot duplicate them and nothing is wrong with the message.
NEVER_STARTED = ("rate limited", "MX concurrency limit reached", "connection lost before this message")


class Path(StrEnum):
    DIRECT = "direct"
    PORTAL = "portal"
    WAIVER = "waiver"


def needs_verified_tls(*, uses_phi: bool, encryption_policy: str) -> bool:
    """Everything needs verified TLS except non-PHI mail under the OPPORTUNISTIC policy."""
    return uses_phi or encryption_policy != EncryptionPolicy.OPPORTUNISTIC


def first_path(*, encryption_policy: str, previous_path: str) -> Path:
    """The first path to try. A message once held for the portal stays there (its notice is retried)."""
    if previous_path == Path.PORTAL or encryption_policy == EncryptionPolicy.PORTAL_ALWAYS:
        return Path.PORTAL
    return Path.DIRECT


@dataclass(frozen=True)
class Fallback:
    path: Path | None  # None: no further path; `state` says what becomes of the message
    state: str = ""
    reason: str = ""


def after_refusal(*, path: Path, encryption_policy: str, waiver_allowed: bool, reason: str) -> Fallback:
    """Verified TLS was needed and the connection could not give it (`reason`)."""
    if path == Path.DIRECT and waiver_allowed and encryption_policy != EncryptionPolicy.PORTAL_ALWAYS:
        return Fallback(Path.WAIVER)
    if path in (Path.DIRECT, Path.WAIVER) and encryption_policy in (
        EncryptionPolicy.TLS_ELSE_PORTAL,
        EncryptionPolicy.PORTAL_ALWAYS,
    ):
        return Fallback(Path.PORTAL)
    if path == Path.PORTAL:
        # The recipient domain enforces TLS (MTA-STS enforce, DANE) and it failed even for the notice:
        # RFC 8461 treats that as temporary.
        return Fallback(None, State.DEFERRED, f"notice refused: {reason}")
    return Fallback(None, State.FAILED, f"no verified TLS and the policy forbids a fallback: {reason}")


def delivered_state(*, path: Path, verified: bool) -> str:
    if path == Path.PORTAL:
        return State.DELIVERED_PORTAL
    if verified:
        return State.DELIVERED_TLS
    if path == Path.WAIVER:
        return State.DELIVERED_WAIVER
    return State.DELIVERED_UNVERIFIED  # non-PHI OPPORTUNISTIC mail


@dataclass(frozen=True)
class Retry:
    state: str  # DEFERRED, or EXPIRED when the schedule gives up
    not_before: datetime | None
    reason: str


def never_started(outcome: Outcome) -> bool:
    """The message never got its turn (a limit, or another message broke the connection): no attempt."""
    return outcome.status == Status.DEFERRED and outcome.reason in NEVER_STARTED


def retry_after(
    *,
    outcome: Outcome,
    attempt: int,
    first_attempt_at: datetime,
    now: datetime,
    schedule: RetrySchedule,
    soon: timedelta,
) -> Retry:
    """When a DEFERRED or AMBIGUOUS message is tried again (same Message-ID), or that it expired."""
    reason = outcome.reason or (f"{outcome.code} {outcome.reply}".strip() if outcome.code else "")
    if never_started(outcome):
        return Retry(State.DEFERRED, now + soon, reason)
    when = schedule.next_attempt(attempt=attempt, first_attempt_at=first_attempt_at, now=now)
    if when is None:
        return Retry(State.EXPIRED, None, f"gave up after {attempt} attempts: {reason}")
    return Retry(State.DEFERRED, when, reason)
