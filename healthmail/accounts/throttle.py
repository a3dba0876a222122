"""Slowing down password and code guessing without letting anyone lock a colleague out.

Failures are counted per (account, client address) pair and per client address. The first
LOGIN_FAILURE_LIMIT failures of a pair cost nothing; each further one closes that pair for an
exponentially growing pause (LOGIN_BACKOFF_BASE_SECONDS, doubled each time, at most
LOGIN_BACKOFF_MAX_SECONDS). An address that fails LOGIN_ADDRESS_FAILURE_LIMIT times across any
accounts (password spraying) is paused the same way for every account.

There is deliberately no account-wide lock: ten wrong passwords from an attacker's address must not
stop the real user signing in from theirs. What bounds an attacker who spreads guesses over many
addresses is that each address pays the back-off and that a password alone never opens a session
(every account has a second factor, counted here too).

We keep this small module instead of django-axes: axes stores attempts with the username in the
database and hooks Django's authenticate(), while our counters live in Redis under keyed hashes (no
email address in a cache key, DESIGN) and our sign-in audits each refusal itself.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from django.conf import settings
from django.core.cache import cache

_PREFIX = "signin-failures"


def account_fingerprint(email: str) -> str:
    """A stable pseudonym for an email address, safe for cache keys and audit details."""
    normalized = email.strip().lower().encode()
    return hmac.new(settings.SECRET_KEY.encode(), normalized, hashlib.sha256).hexdigest()[:32]


def _now() -> float:
    return time.time()


def _scopes(*, email: str, client_ip: str | None) -> list[tuple[str, int]]:
    """(counter key, free failures) for each scope this attempt counts in."""
    address = client_ip or "unknown"
    scopes = [(f"{_PREFIX}:pair:{account_fingerprint(email)}:{address}", settings.LOGIN_FAILURE_LIMIT)]
    if client_ip:
        scopes.append((f"{_PREFIX}:address:{client_ip}", settings.LOGIN_ADDRESS_FAILURE_LIMIT))
    return scopes


def backoff_seconds(failures: int, *, limit: int) -> float:
    """The pause after the failure numbered `failures`: none up to the limit, then doubling."""
    if failures < limit:
        return 0.0
    base, cap = settings.LOGIN_BACKOFF_BASE_SECONDS, settings.LOGIN_BACKOFF_MAX_SECONDS
    return float(min(cap, base * 2 ** min(failures - limit, 32)))


def is_locked(*, email: str, client_ip: str | None) -> bool:
    """True while this account from this address, or this address at all, is paused."""
    keys = [f"{key}:until" for key, _ in _scopes(email=email, client_ip=client_ip)]
    now = _now()
    return any(float(until) > now for until in cache.get_many(keys).values())


def record_failure(*, email: str, client_ip: str | None) -> None:
    for key, limit in _scopes(email=email, client_ip=client_ip):
        # Failures are remembered LOGIN_FAILURE_WINDOW_SECONDS from the first; add() opens that
        # window only if none is open, incr() keeps its expiry.
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)
        try:
            failures = cache.incr(key)
        except ValueError:  # the window closed between add() and incr(): start a new one
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)
            failures = 1
        pause = backoff_seconds(failures, limit=limit)
        if pause:
            cache.set(f"{key}:until", _now() + pause, timeout=int(pause) + 1)


def reset_account(*, email: str, client_ip: str | None) -> None:
    """After a complete sign-in: this account from this address starts over. The address counter
    stays: one account's success must not let a password-spraying client start over."""
    key, _ = _scopes(email=email, client_ip=client_ip)[0]
    cache.delete_many([key, f"{key}:until"])


def reset_client(*, client_ip: str) -> None:
    """An operator (or a test) lifts the pause of one address across accounts."""
    key = f"{_PREFIX}:address:{client_ip}"
    cache.delete_many([key, f"{key}:until"])
