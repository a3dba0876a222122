"""The send gate again, right before the SMTP transaction: a revocation that committed after the
message was queued stops it. One gate query per (purpose, PHI, topic) group of a claimed batch."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from consent import services as consent
from consent.gate import Decision, may_send_batch, may_send_to_addresses
from consent.models import TRANSACTIONAL_PURPOSES, Topic
from delivery.models import Message
from healthmail.errors import NotFound
from healthmail.tenants.models import Tenant


@dataclass(frozen=True)
class GateResult:
    allowed: bool
    reason: str = ""
    unencrypted_allowed: bool = False  # a recorded patient waiver covers this purpose


def _topic(tenant: Tenant, purpose: str, key: str, cache: dict[str, Topic | None]) -> Topic | None:
    if purpose in TRANSACTIONAL_PURPOSES or not key:
        return None
    if key not in cache:  # a topic looked up once per batch
        try:
            cache[key] = consent.topic_by_key(tenant=tenant, key=key)
        except NotFound:
            cache[key] = None
    return cache[key]


def _result(decision: Decision) -> GateResult:
    reason = "" if decision.allowed else f"{decision.code}: {decision.reason}"
    return GateResult(decision.allowed, reason, decision.unencrypted_allowed)


def _gate_bare(tenant: Tenant, messages: list[Message], results: dict[uuid.UUID, GateResult]) -> None:
    """Messages to a bare address (an API send without a contact), by purpose."""
    by_purpose: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_purpose[message.purpose].append(message)
    for purpose, members in by_purpose.items():
        try:
            decisions = may_send_to_addresses(
                tenant=tenant, address_indexes=[bytes(m.to_address_index) for m in members], purpose=purpose
            )
        except ValueError as error:  # an unknown purpose on the row: a refusal, not a crash
            for message in members:
                results[message.pk] = GateResult(False, f"invalid_purpose: {error}")
            continue
        for message in members:
            results[message.pk] = _result(decisions[bytes(message.to_address_index)])


def gate_messages(*, tenant: Tenant, messages: Iterable[Message]) -> dict[uuid.UUID, GateResult]:
    """The gate's decision for each message, read from committed state now."""
    groups: dict[tuple[str, bool, str], list[Message]] = defaultdict(list)
    results: dict[uuid.UUID, GateResult] = {}
    bare: list[Message] = []
    for message in messages:
        if message.contact_id is None:
            bare.append(message)
        else:
            groups[(message.purpose, message.uses_phi, message.topic)].append(message)
    _gate_bare(tenant, bare, results)
    topics: dict[str, Topic | None] = {}
    for (purpose, uses_phi, topic_key), members in groups.items():
        topic = _topic(tenant, purpose, topic_key, topics)
        if topic_key and topic is None and purpose not in TRANSACTIONAL_PURPOSES:
            for message in members:
                results[message.pk] = GateResult(False, f"topic_not_found: no topic {topic_key!r}")
            continue
        try:
            decisions = may_send_batch(
                tenant=tenant,
                contact_ids=[m.contact_id for m in members],
                purpose=purpose,
                uses_phi=uses_phi,
                topic=topic,
            )
        except ValueError as error:  # an unknown purpose on the row: a refusal, not a crash
            for message in members:
                results[message.pk] = GateResult(False, f"invalid_purpose: {error}")
            continue
        for message in members:
            results[message.pk] = _result(decisions[cast(uuid.UUID, message.contact_id)])  # has a contact
    return results


def topics_for(*, tenant: Tenant, messages: Iterable[Message]) -> dict[str, Topic | None]:
    """The Topic of each marketing message's topic key (for its unsubscribe link)."""
    cache: dict[str, Topic | None] = {}
    for message in messages:
        _topic(tenant, message.purpose, message.topic, cache)
    return cache
