"""The SMTP phase of a round: every recipient domain's messages over a few reused connections to its
MX hosts (the most preferred one that takes them), all domains at once, under the limits shared by
every worker of the stream (Redis).

Connections are kept by the worker process across rounds and claims (delivery/smtp/pool.py), each for
one stream, one MX host and one TLS requirement; no connection is shared between streams, and every
connection binds the stream's own source address (`deps.transport`, see send.Dependencies.for_stream).

A message whose reply has not come after DELIVERY_SMTP_STALL_SECONDS does not hold its round: the
round returns without it, and its wait (up to the RFC's timeouts) goes on, on the process's loop,
for the caller to record when it ends (engine/stalls.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis import asyncio as redis_asyncio

from delivery.smtp.client import Detached, deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.message import Prepared
from delivery.smtp.outcomes import Outcome
from delivery.smtp.pool import ProcessSessions, StreamSessions
from delivery.smtp.throttle import BUCKET_SCRIPT, MxConcurrency, redis_client
from delivery.tls.policy import TlsPolicy
from healthmail.outages import REDIS_ERRORS

if TYPE_CHECKING:  # send imports this module
    from .prepare import Work
    from .send import Dependencies

# Connections one worker process keeps open at once, across all domains.
WORKER_CONNECTIONS = 20


class BatchedTokenBucket:
    """The transport's per-domain token bucket (same Redis keys and Lua script, so every worker shares
    the rate), taking tokens `chunk` at a time: one Redis call per `chunk` messages instead of one per
    message. Tokens left over when the round ends are simply not used (the rate errs low)."""

    def __init__(
        self, client: redis_asyncio.Redis, *, rate: float, burst: int, prefix: str, chunk: int = 20
    ) -> None:
        self.rate, self.burst, self.prefix = rate, burst, prefix
        self.chunk = max(1, min(chunk, burst))
        self.local: dict[str, int] = {}
        self._script = client.register_script(BUCKET_SCRIPT)

    async def _take(self, domain: str, cost: int) -> float:
        try:
            wait_ms = await self._script(
                keys=[f"{self.prefix}:rate:{domain}"], args=[self.rate, self.burst, cost]
            )
        except REDIS_ERRORS:
            # The shared rate is unreachable: "wait forever", so the rest of the batch is deferred as
            # not started (no hand-off lost to an exception, nothing counted as ambiguous).
            return math.inf
        return int(wait_ms) / 1000

    async def take(self, domain: str) -> float:
        domain = domain.lower()
        if self.local.get(domain, 0) > 0:
            self.local[domain] -= 1
            return 0.0
        if self.chunk > 1 and await self._take(domain, self.chunk) <= 0:
            self.local[domain] = self.chunk - 1
            return 0.0
        return await self._take(domain, 1)


@dataclass
class Group:
    routes: tuple[MxRoute, ...]  # the relay, or the domain's MX hosts in preference order
    policy: TlsPolicy
    members: list[tuple[Work, Prepared]]


def chunks(
    messages: Sequence[Prepared], *, per_connection: int, max_connections: int
) -> list[list[Prepared]]:
    """Split one domain's messages over as few connections as `per_connection` allows, at most
    `max_connections` of them, evenly (one slow connection should not hold most of the batch)."""
    if not messages:
        return []
    count = min(max_connections, math.ceil(len(messages) / per_connection))
    size = math.ceil(len(messages) / count)
    return [list(messages[i : i + size]) for i in range(0, len(messages), size)]


Stalled = dict[str, concurrent.futures.Future[Outcome]]


def deliver_round(
    groups: Sequence[Group], *, deps: Dependencies, stream: str
) -> tuple[dict[str, Outcome], Stalled]:
    """The SMTP phase of one round, on this process's loop and with its kept sessions: the outcomes,
    and the waits of the stalled messages (by key) that go on after it."""
    process = ProcessSessions.current()
    sessions = StreamSessions(process.pool, stream) if process.pool is not None else None
    detached: Detached = {}
    outcomes = process.run(
        deliver_groups(
            groups,
            deps=deps,
            stream=stream,
            sessions=sessions,
            detached=detached,
            client=process.redis() if deps.shared_limits else None,
        )
    )
    return outcomes, {key: process.watch(waiting) for key, waiting in detached.items()}


async def deliver_groups(
    groups: Sequence[Group],
    *,
    deps: Dependencies,
    stream: str,
    sessions: StreamSessions | None = None,
    detached: Detached | None = None,
    client: redis_asyncio.Redis | None = None,
) -> dict[str, Outcome]:
    """`client`: the process's Redis client for the shared limits (kept open); without one, a client
    of the round's own is opened and closed."""
    if not groups:
        return {}
    engine = deps.engine
    throttle = concurrency = None
    own = None
    if deps.shared_limits:
        if client is None:
            client = own = redis_client()
        # Each stream has its own buckets and MX slots: marketing volume never uses up transactional's.
        prefix = f"{engine.redis_prefix}:{stream}"
        throttle = BatchedTokenBucket(
            client, rate=engine.domain_rate, burst=engine.domain_burst, prefix=prefix
        )
        concurrency = MxConcurrency(
            client, limit=engine.mx_concurrency, lease_seconds=engine.mx_lease_seconds, prefix=prefix
        )
    slots = asyncio.Semaphore(WORKER_CONNECTIONS)

    async def one(group: Group, batch: list[Prepared]) -> list[Outcome]:
        async with slots:
            return await deliver_batch(
                group.routes,
                batch,
                group.policy,
                transport=deps.transport,
                throttle=throttle,
                concurrency=concurrency,
                sessions=sessions,
                detached=detached,
            )

    jobs = [
        one(group, batch)
        for group in groups
        for batch in chunks(
            [prepared for _, prepared in group.members],
            per_connection=engine.per_connection,
            max_connections=engine.mx_connections,
        )
    ]
    try:
        results = await asyncio.gather(*jobs)
    finally:
        if own is not None:
            await own.aclose()
    return {outcome.key: outcome for batch in results for outcome in batch}
