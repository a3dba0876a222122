"""The send gate again, right before the SMTP transaction: a revocation that committed after the
message was queued stops it. One gate query per (purpose, PHI, topic) group of a claimed batch."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from consent import services as consent
from consent.gate import SUPPRESSION_BLOCKS, may_send_batch
from consent.models import TRANSACTIONAL_PURPOSES, Suppression, Topic
from delivery.models import Message
from healthmail.errors import NotFound
from healthmail.tenants.models import Service, Tenant
from healthmail.tenants.services import tenant_can


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


def _without_contact(tenant: Tenant, message: Message) -> GateResult:
    """Messages to a bare address (an API send without a contact): the BAA, and the suppression list
    by the address's blind index. Only transactional purposes may go to a bare address."""
    if message.purpose not in TRANSACTIONAL_PURPOSES:
        return GateResult(False, "no_contact: non-transactional email needs a contact with consent")
    permit = tenant_can(tenant, Service.TRANSACTIONAL_EMAIL)
    if not permit.allowed:
        return GateResult(False, f"baa_not_in_force: {permit.reason}")
    reasons = Suppression.objects.filter(
        tenant=tenant, email_index=bytes(message.to_address_index), removed_at__isnull=True
    ).values_list("reason", flat=True)
    for reason in reasons:
        if message.purpose in SUPPRESSION_BLOCKS.get(reason, ()):
            return GateResult(False, f"suppressed_{reason}: the address is suppressed")
    return GateResult(True)


def gate_messages(*, tenant: Tenant, messages: Iterable[Message]) -> dict[uuid.UUID, GateResult]:
    """The gate's decision for each message, read from committed state now."""
    groups: dict[tuple[str, bool, str], list[Message]] = defaultdict(list)
    results: dict[uuid.UUID, GateResult] = {}
    for message in messages:
        if message.contact_id is None:
            results[message.pk] = _without_contact(tenant, message)
        else:
            groups[(message.purpose, message.uses_phi, message.topic)].append(message)
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
            decision = decisions[cast(uuid.UUID, message.contact_id)]  # grouped only with a contact
            results[message.pk] = GateResult(
                decision.allowed,
                "" if decision.allowed else f"{decision.code}: {decision.reason}",
                decision.unencrypted_allowed,
            )
    return results


def topics_for(*, tenant: Tenant, messages: Iterable[Message]) -> dict[str, Topic | None]:
    """The Topic of each marketing message's topic key (for its unsubscribe link)."""
    cache: dict[str, Topic | None] = {}
    for message in messages:
        _topic(tenant, message.purpose, message.topic, cache)
    return cache
