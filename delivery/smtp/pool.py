"""SMTP sessions kept open per worker process across rounds and claims, so a steady stream to one MX
host pays the TCP + STARTTLS + two EHLO set-up once instead of once per round.

A session is only reused for exactly what it was opened for: the same stream, MX host name, port,
address, relay credentials, TLS requirement (verified, DANE with the same TLSA records, or
opportunistic), policy source and transport settings (CA file, source address, EHLO name). The
certificate was checked for that host name under that requirement when the session was opened, so a
reused session carries PHI only where a fresh one would. Before reuse the session is asked RSET: a
session the server closed while idle is dropped and a fresh one opened (nothing was written to it).

Limits (docs/delivery-engine.md, settings from the environment): `DELIVERY_POOL_IDLE_SECONDS` (an idle
session older than this is closed), `DELIVERY_POOL_PER_HOST` (idle sessions kept per key),
`DELIVERY_POOL_CONNECTIONS` (idle sessions kept by the process; 0 turns the pool off) and
`DELIVERY_POOL_MESSAGES` (messages a session carries before it is closed).

Sessions belong to an event loop, and a round of the engine used to run in its own `asyncio.run`:
`ProcessSessions.run` keeps one loop per process instead, running in a thread of its own, so a
transaction that outlives its round (a stalled message waiting alone for its reply: client.py,
engine/stalls.py) goes on while the worker records the round and claims the next batch. Sockets
cannot be shared across fork, so the pool is per process id (a forked child starts with an empty one).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiosmtplib
from django.conf import settings
from redis import asyncio as redis_asyncio

from .connection import MxRoute, Requirement, TransportSettings, close_session, open_session
from .outcomes import TlsEvidence
from .throttle import redis_client

T = TypeVar("T")


@dataclass(frozen=True)
class SessionKey:
    stream: str
    route: MxRoute  # host (the certificate's name), port, address, relay credentials
    requirement: Requirement
    tlsa: tuple
    policy_source: str
    transport: TransportSettings  # CA file, source address, EHLO name


@dataclass
class Idle:
    smtp: aiosmtplib.SMTP
    evidence: TlsEvidence
    since: float
    messages: int


@dataclass(frozen=True)
class PoolSettings:
    idle_seconds: float = 30.0
    per_host: int = 8
    connections: int = 20
    messages: int = 1000

    @classmethod
    def from_settings(cls) -> PoolSettings:
        return cls(
            idle_seconds=float(getattr(settings, "DELIVERY_POOL_IDLE_SECONDS", 30.0)),
            per_host=int(getattr(settings, "DELIVERY_POOL_PER_HOST", 8)),
            connections=int(getattr(settings, "DELIVERY_POOL_CONNECTIONS", 20)),
            messages=int(getattr(settings, "DELIVERY_POOL_MESSAGES", 1000)),
        )


@dataclass
class SessionPool:
    limits: PoolSettings
    clock: Callable[[], float] = time.monotonic
    idle: dict[SessionKey, list[Idle]] = field(default_factory=dict)
    lent: dict[int, tuple[SessionKey, int]] = field(default_factory=dict)  # id(smtp) → key, messages
    opened: int = 0
    reused: int = 0

    async def open(self, key: SessionKey) -> tuple[aiosmtplib.SMTP, TlsEvidence]:
        """A session meeting the key's requirement: a kept one that still answers, else a new one
        (which raises TlsRefused / ConnectFailed as open_session does)."""
        await self._expire()
        stack = self.idle.get(key, [])
        while stack:
            kept = stack.pop()
            if await _answers(kept.smtp):
                self.reused += 1
                self.lent[id(kept.smtp)] = (key, kept.messages)
                return kept.smtp, kept.evidence
        smtp, evidence = await open_session(
            key.route,
            requirement=key.requirement,
            transport=key.transport,
            tlsa=key.tlsa,
            policy_source=key.policy_source,
        )
        self.opened += 1
        self.lent[id(smtp)] = (key, 0)
        return smtp, evidence

    async def give_back(self, smtp: aiosmtplib.SMTP, evidence: TlsEvidence, *, sent: int) -> None:
        """A session whose last transaction ended cleanly (a reply read, nothing pending)."""
        key, earlier = self.lent.pop(id(smtp))
        messages = earlier + sent
        stack = self.idle.setdefault(key, [])
        kept = sum(len(sessions) for sessions in self.idle.values())
        if (
            not smtp.is_connected
            or messages >= self.limits.messages
            or len(stack) >= self.limits.per_host
            or kept >= self.limits.connections
        ):
            await close_session(smtp)
            return
        stack.append(Idle(smtp, evidence, self.clock(), messages))

    def forget(self, smtp: aiosmtplib.SMTP) -> None:
        """A session that was lost or closed by its user."""
        self.lent.pop(id(smtp), None)

    async def _expire(self) -> None:
        oldest = self.clock() - self.limits.idle_seconds
        for key, stack in list(self.idle.items()):
            stale = [kept for kept in stack if kept.since < oldest]
            self.idle[key] = [kept for kept in stack if kept.since >= oldest]
            for kept in stale:
                await close_session(kept.smtp)
            if not self.idle[key]:
                del self.idle[key]

    async def close_all(self) -> None:
        for stack in self.idle.values():
            for kept in stack:
                await close_session(kept.smtp)
        self.idle.clear()


async def _answers(smtp: aiosmtplib.SMTP) -> bool:
    if not smtp.is_connected:
        return False
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
        return False
    return True


class ProcessSessions:
    """This process's event loop (in a thread of its own) and session pool (one per process id:
    sockets do not survive fork)."""

    _current: ProcessSessions | None = None

    def __init__(self, limits: PoolSettings):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.pool = SessionPool(limits) if limits.connections > 0 else None
        self._redis: tuple[str, redis_asyncio.Redis] | None = None  # (URL, client), see redis()
        self.thread = threading.Thread(target=self.loop.run_forever, name="smtp loop", daemon=True)
        self.thread.start()

    @classmethod
    def current(cls) -> ProcessSessions:
        if cls._current is None or cls._current.pid != os.getpid():
            cls._current = cls(PoolSettings.from_settings())
        return cls._current

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run one round on the process's loop (where its kept sessions live) and wait for it. If the
        caller is interrupted (a task's soft time limit), the round is cancelled, not left running."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def redis(self) -> redis_asyncio.Redis:
        """The process's client for the shared limits (token buckets, MX leases), made once and used
        by every round on this loop: a client per round paid a connection (and its script load) each
        time. Its pool reconnects by itself after a Redis outage; a changed REDIS_URL gets a new one."""
        url = settings.REDIS_URL
        if self._redis is None or self._redis[0] != url:
            if self._redis is not None:
                old = self._redis[1]
                asyncio.run_coroutine_threadsafe(old.aclose(), self.loop)  # closed on its own loop
            self._redis = (url, redis_client())
        return self._redis[1]

    def watch(self, task: asyncio.Future[T]) -> concurrent.futures.Future[T]:
        """A thread-safe handle on a task of the loop (a stalled message's wait that outlives its round)."""

        async def result() -> T:
            return await task

        return asyncio.run_coroutine_threadsafe(result(), self.loop)

    def close(self) -> None:
        """Cancel what still runs on the loop (stalled waits), close the kept sessions, stop the loop."""

        async def shut() -> None:
            current = asyncio.current_task()
            waiting = [task for task in asyncio.all_tasks() if task is not current]
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            if self.pool is not None:
                await self.pool.close_all()
            if self._redis is not None:
                await self._redis[1].aclose()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@dataclass(frozen=True)
class StreamSessions:
    """The pool as one stream's transport sees it: open_session's signature, and a close that keeps."""

    pool: SessionPool
    stream: str

    async def open(
        self,
        route: MxRoute,
        *,
        requirement: Requirement,
        transport: TransportSettings,
        tlsa: tuple = (),
        policy_source: str = "",
    ) -> tuple[aiosmtplib.SMTP, TlsEvidence]:
        key = SessionKey(self.stream, route, requirement, tuple(tlsa), policy_source, transport)
        return await self.pool.open(key)

    async def close(self, smtp: aiosmtplib.SMTP, evidence: TlsEvidence, *, sent: int, lost: bool) -> None:
        if lost:
            self.pool.forget(smtp)
        else:
            await self.pool.give_back(smtp, evidence, sent=sent)


def process_sessions_close() -> None:
    """Close this process's kept sessions and its loop (a worker process shutting down; tests, so one
    test's sessions never serve the next). Stalled waits still running are cancelled: call
    engine.stalls.stalls_wait first to let them finish."""
    process = ProcessSessions._current
    if process is None or process.pid != os.getpid():
        return
    ProcessSessions._current = None
    process.close()
