"""Engine settings, read once per batch from Django settings (every one has a default). Base
settings read each from the environment variable of the same name (docs/operations.md).

| setting | default | |
|---|---|---|
| DELIVERY_CLAIM_BATCH | 200 | rows claimed per round |
| DELIVERY_LEASE_SECONDS | 300 | a claim older than this is the sweeper's, if its holder never beat |
| DELIVERY_HEARTBEAT_SECONDS | 5 | a drain holding claims beats this often (heartbeat.py) |
| DELIVERY_HEARTBEAT_GRACE_SECONDS | 20 | a holder silent this long is dead: its claims are taken back |
| DELIVERY_DRAIN_SECONDS | 30 | one task sends for this long, then re-enqueues itself |
| DELIVERY_PARALLEL_DRAINS | 4 | processes a backlog of one tenant's stream fans out to |
| DELIVERY_MESSAGES_PER_CONNECTION | 50 | messages per SMTP connection before another is opened |
| DELIVERY_MX_CONNECTIONS | 8 | connections a worker opens to one MX host at once |
| DELIVERY_MX_CONCURRENCY | 20 | open connections per MX host across all workers (Redis leases) |
| DELIVERY_MX_LEASE_SECONDS | 120 | a killed worker's MX slot frees itself after this |
| DELIVERY_DOMAIN_RATE / _BURST | 500 / 1000 | token bucket per recipient domain (messages/s) |
| DELIVERY_RETRY_MINIMUM_SECONDS | 300 | first retry after a 4xx; doubles up to 4 h |
| DELIVERY_MAX_AGE_SECONDS | 5 days | then a deferred message expires |
| DELIVERY_SOON_SECONDS | 5 | re-try of a message that never started (rate or MX limit, lost connection) |
| DELIVERY_REDIS_PREFIX | hm:delivery | Redis keys of the shared limits |
| DELIVERY_RECOVERY_SECONDS | 60 | a drain that lost PostgreSQL waits this long for it to free its claims |
| DELIVERY_JOURNAL_DIR | .devstack/delivery-journal | the worker's local outcome journal (journal.py) |
| DELIVERY_STREAMS | see STREAM_DEFAULTS | sending identity per stream |

DELIVERY_STREAMS = {"transactional": {...}, "marketing": {...}}, each optional key:
`from_local_part`, `verp_prefix` (up to 11 characters), `return_path_domain`, `source_address` (the
local IP the stream's SMTP connections bind to, probe included; base settings read it from
DELIVERY_<STREAM>_SOURCE_ADDRESS) and `relay` ({host, port, address, username, password}; from
DELIVERY_<STREAM>_RELAY_HOST, _PORT, _USERNAME, _PASSWORD or _PASSWORD_FILE).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypedDict, TypeVar

from django.conf import settings

from delivery.inbound.verp import verp_address
from delivery.models import Stream
from delivery.smtp.connection import MxRoute
from delivery.smtp.outcomes import RetrySchedule


# Transactional and marketing mail never share an identity: their own VERP return path (so bounces
# and reputation are told apart), optionally their own source IP or relay, and their own connection
# limits.
class RelaySpec(TypedDict, total=False):
    host: str
    port: int | str
    address: str | None
    username: str
    password: str


class StreamSpec(TypedDict, total=False):
    """One stream's entry of DELIVERY_STREAMS (every key optional over STREAM_DEFAULTS)."""

    from_local_part: str
    verp_prefix: str
    return_path_domain: str
    source_address: str | None
    relay: RelaySpec | None


STREAM_DEFAULTS: dict[str, StreamSpec] = {
    Stream.TRANSACTIONAL: {"from_local_part": "care", "verp_prefix": "bounce-t", "return_path_domain": ""},
    Stream.MARKETING: {"from_local_part": "news", "verp_prefix": "bounce-m", "return_path_domain": ""},
}


@dataclass(frozen=True)
class StreamIdentity:
    stream: str
    from_local_part: str
    verp_prefix: str
    return_path_domain: str = ""  # empty: the sender domain itself (SPF on it is already required)
    relay: MxRoute | None = None  # a smart host: every message of the stream goes through it
    # The local IP every SMTP connection of the stream binds to (its own sending reputation); empty:
    # the OS picks. An address the host does not have defers the stream's mail with the reason.
    source_address: str = ""

    def return_path(self, *, tenant_id: uuid.UUID, message_id: uuid.UUID, sender_domain: str) -> str:
        """VERP: the bounce address names the tenant and the outbox row (opaque ids, never the
        recipient), so a report is matched without asking every tenant (delivery/inbound/verp.py)."""
        domain = self.return_path_domain or sender_domain
        return verp_address(
            prefix=self.verp_prefix, tenant_id=tenant_id, message_id=message_id, domain=domain
        )


def _relay(spec: RelaySpec | None) -> MxRoute | None:
    if not spec or not spec.get("host"):
        return None
    return MxRoute(
        host=spec["host"],
        port=int(spec.get("port", 587)),
        address=spec.get("address"),
        username=spec.get("username", ""),
        password=spec.get("password", ""),
    )


def stream_identity(stream: str) -> StreamIdentity:
    configured = getattr(settings, "DELIVERY_STREAMS", {}).get(stream, {})
    values: StreamSpec = {**STREAM_DEFAULTS[stream], **configured}
    return StreamIdentity(
        stream=stream,
        from_local_part=values["from_local_part"],
        verp_prefix=values["verp_prefix"],
        return_path_domain=values.get("return_path_domain", ""),
        relay=_relay(values.get("relay")),
        source_address=str(values.get("source_address") or "").strip(),
    )


_Value = TypeVar("_Value", int, float, str)


def _setting(name: str, default: _Value) -> _Value:
    return type(default)(getattr(settings, name, default))


@dataclass(frozen=True)
class EngineSettings:
    claim_batch: int = 200
    lease: timedelta = timedelta(seconds=300)
    drain_seconds: float = 30.0
    per_connection: int = 50
    mx_connections: int = 8
    mx_concurrency: int = 20
    mx_lease_seconds: int = 120
    domain_rate: float = 500.0
    domain_burst: int = 1000
    soon: timedelta = timedelta(seconds=5)
    redis_prefix: str = "hm:delivery"
    recovery_seconds: float = 60.0
    heartbeat: float = 5.0
    heartbeat_grace: float = 20.0
    retry: RetrySchedule = field(default_factory=RetrySchedule)

    @classmethod
    def from_settings(cls) -> EngineSettings:
        minimum = timedelta(seconds=_setting("DELIVERY_RETRY_MINIMUM_SECONDS", 300))
        return cls(
            claim_batch=_setting("DELIVERY_CLAIM_BATCH", 200),
            lease=timedelta(seconds=_setting("DELIVERY_LEASE_SECONDS", 300)),
            drain_seconds=_setting("DELIVERY_DRAIN_SECONDS", 30.0),
            per_connection=_setting("DELIVERY_MESSAGES_PER_CONNECTION", 50),
            mx_connections=_setting("DELIVERY_MX_CONNECTIONS", 8),
            mx_concurrency=_setting("DELIVERY_MX_CONCURRENCY", 20),
            mx_lease_seconds=_setting("DELIVERY_MX_LEASE_SECONDS", 120),
            domain_rate=_setting("DELIVERY_DOMAIN_RATE", 500.0),
            domain_burst=_setting("DELIVERY_DOMAIN_BURST", 1000),
            soon=timedelta(seconds=_setting("DELIVERY_SOON_SECONDS", 5)),
            redis_prefix=_setting("DELIVERY_REDIS_PREFIX", "hm:delivery"),
            recovery_seconds=_setting("DELIVERY_RECOVERY_SECONDS", 60.0),
            heartbeat=_setting("DELIVERY_HEARTBEAT_SECONDS", 5.0),
            heartbeat_grace=_setting("DELIVERY_HEARTBEAT_GRACE_SECONDS", 20.0),
            retry=RetrySchedule(
                minimum=minimum,
                maximum=max(minimum, timedelta(hours=4)),
                max_age=timedelta(seconds=_setting("DELIVERY_MAX_AGE_SECONDS", 5 * 86400)),
            ),
        )
