"""Counting failed sign-in attempts (password and second factor) per account and per client address.

Counters live in the shared cache (Redis) so every web process sees them. A window opens at the
first failure and closes LOGIN_FAILURE_WINDOW_SECONDS later; at LOGIN_FAILURE_LIMIT failures within it
further attempts are refused. The account key is a keyed hash of the address: cache keys never carry
an email address (DESIGN: no personal data in cache keys), and the hash cannot be reversed offline
without the secret key.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.core.cache import cache

_PREFIX = "signin-failures"


def account_fingerprint(email: str) -> str:
    """A stable pseudonym for an email address, safe for cache keys and audit details."""
    normalized = email.strip().lower().encode()
    return hmac.new(settings.SECRET_KEY.encode(), normalized, hashlib.sha256).hexdigest()[:32]


def _keys(*, email: str, client_ip: str | None) -> list[str]:
    keys = [f"{_PREFIX}:account:{account_fingerprint(email)}"]
    if client_ip:
        keys.append(f"{_PREFIX}:ip:{client_ip}")
    return keys


def is_locked(*, email: str, client_ip: str | None) -> bool:
    counts = cache.get_many(_keys(email=email, client_ip=client_ip))
    return any(int(count) >= settings.LOGIN_FAILURE_LIMIT for count in counts.values())


def record_failure(*, email: str, client_ip: str | None) -> None:
    for key in _keys(email=email, client_ip=client_ip):
        # add() starts the window only if none is open; incr() keeps the key's expiry.
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # the window closed between add() and incr(): start a new one
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)


def reset_account(*, email: str) -> None:
    """After a complete sign-in. The address counter stays: one account's success must not let a
    password-spraying client from the same address start over."""
    cache.delete(f"{_PREFIX}:account:{account_fingerprint(email)}")


def reset_client(*, client_ip: str) -> None:
    cache.delete(f"{_PREFIX}:ip:{client_ip}")
