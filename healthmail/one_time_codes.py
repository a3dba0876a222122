"""One-time codes sent to a mailbox, shared by every place that needs proof of it (the secure portal,
the preference center): a 6-digit code, stored only as a keyed hash, and hourly counters in Redis
shared by every web process so that sends and wrong guesses are limited per subject and per client."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.cache import cache

THROTTLE_WINDOW_SECONDS = 3600


def code_new() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def code_normalize(code: str) -> str:
    """What a person typed, as a code: digits only (spaces and dashes from the mail are dropped)."""
    return "".join(ch for ch in code if ch.isdigit())[:6]


def code_hash(*, purpose: str, entry_id: object, code: str) -> str:
    """Keyed with SECRET_KEY and bound to the entry and its purpose: a leaked table reveals no code."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"{purpose}|{entry_id}|{code}".encode(), hashlib.sha256).hexdigest()


def code_matches(*, purpose: str, entry_id: object, code: str, stored_hash: str) -> bool:
    return hmac.compare_digest(stored_hash, code_hash(purpose=purpose, entry_id=entry_id, code=code))


def throttle_count(key: str) -> int:
    return cache.get(key) or 0


def throttle_hit(key: str) -> int:
    cache.add(key, 0, timeout=THROTTLE_WINDOW_SECONDS)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=THROTTLE_WINDOW_SECONDS)
        return 1
