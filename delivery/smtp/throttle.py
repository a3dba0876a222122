"""Limits shared by every worker through Redis: a token bucket per recipient domain and a lease-based
concurrency limit per MX host. Both are single Lua scripts, so a check and its update are atomic.

Keys carry domain and host names only (never addresses). Leases expire, so a killed worker frees
its MX slot after `lease_seconds` instead of holding it forever.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Protocol

from django.conf import settings
from redis import asyncio as redis_asyncio

from healthmail.outages import REDIS_ERRORS

# KEYS[1] bucket; ARGV rate (tokens/s), burst, cost. Returns milliseconds to wait (0: granted).
BUCKET_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now_ms
tokens = math.min(burst, tokens + (now_ms - at) * rate / 1000)
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""

# KEYS[1] lease set; ARGV limit, lease id, lease ms. Returns 1 when the lease was granted.
ACQUIRE_LEASE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
  return 1
end
return 0
"""


def redis_client() -> redis_asyncio.Redis:
    # No CLIENT SETINFO: redis-py reads its version from the package metadata for every new
    # connection (~5 ms), and the engine opens a client per sending round.
    return redis_asyncio.Redis.from_url(settings.REDIS_URL, driver_info=None)


class Throttle(Protocol):
    async def take(self, domain: str) -> float:
        """Seconds to wait before a message to `domain` may go (0: go now, a token was taken)."""
        ...


class DomainTokenBucket:
    def __init__(self, client: redis_asyncio.Redis, *, rate: float, burst: int, prefix: str = "hm:delivery"):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.client, self.rate, self.burst, self.prefix = client, rate, burst, prefix
        self._script = client.register_script(BUCKET_SCRIPT)

    async def take(self, domain: str) -> float:
        key = f"{self.prefix}:rate:{domain.lower()}"
        wait_ms = await self._script(keys=[key], args=[self.rate, self.burst, 1])
        return int(wait_ms) / 1000


class MxConcurrency:
    """At most `limit` open connections per MX host across all workers."""

    def __init__(
        self,
        client: redis_asyncio.Redis,
        *,
        limit: int,
        lease_seconds: int = 600,
        prefix: str = "hm:delivery",
    ):
        self.client, self.limit, self.lease_ms, self.prefix = client, limit, lease_seconds * 1000, prefix
        self._script = client.register_script(ACQUIRE_LEASE)

    def _key(self, host: str) -> str:
        return f"{self.prefix}:mx:{host.lower()}"

    async def acquire(self, host: str) -> str | None:
        lease = uuid.uuid4().hex
        try:
            granted = await self._script(keys=[self._key(host)], args=[self.limit, lease, self.lease_ms])
        except REDIS_ERRORS:
            # The shared count is unreachable: no slot, so the messages wait (deferred, not started)
            # rather than open connections nobody counts.
            return None
        return lease if int(granted) == 1 else None

    async def release(self, host: str, lease: str) -> None:
        with contextlib.suppress(*REDIS_ERRORS):  # the lease runs out on its own
            await self.client.zrem(self._key(host), lease)
