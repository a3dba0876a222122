"""Reads for the delivery pages: progress per source, a message by id, its evidence, the domain table.
Counts and ids only, except the masked address, which is read under an audited phi_access."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from audit.phi import phi_access
from delivery.models import DomainTlsPolicy, Message, MessageAttempt
from healthmail.actors import Actor
from healthmail.crypto.masking import mask
from healthmail.disclosure import Disclosed, Viewer, disclose
from healthmail.errors import NotFound
from healthmail.tenants.models import Tenant

State = Message.State
PENDING = (State.QUEUED, State.SENDING, State.DEFERRED)
DELIVERED = (State.DELIVERED_TLS, State.DELIVERED_PORTAL, State.DELIVERED_WAIVER, State.DELIVERED_UNVERIFIED)
NOT_DELIVERED = (State.BOUNCED, State.FAILED, State.SUPPRESSED, State.CANCELLED, State.EXPIRED)


@dataclass
class SourceProgress:
    source_type: str
    source_id: str
    counts: dict[str, int] = field(default_factory=dict)
    ambiguous_sends: int = 0
    first_queued_at: datetime | None = None
    last_change_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _sum(self, states: Iterable[str]) -> int:
        return sum(self.counts.get(state, 0) for state in states)

    @property
    def pending(self) -> int:
        return self._sum(PENDING)

    @property
    def delivered(self) -> int:
        return self._sum(DELIVERED)

    @property
    def not_delivered(self) -> int:
        return self._sum(NOT_DELIVERED)

    @property
    def done(self) -> int:
        return self.total - self.pending

    @property
    def percent_done(self) -> int:
        return 100 if not self.total else int(100 * (self.total - self.pending) / self.total)

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.pending == 0

    def rows(self) -> list[tuple[str, str, int]]:
        """(state, label, count) for every state, in lifecycle order."""
        return [(state.value, state.label, self.counts.get(state.value, 0)) for state in State]


def source_progress_shown(*, tenant: Tenant, viewer: Viewer, progress: SourceProgress) -> dict[str, object]:
    """A source's figures as `viewer` may see them (healthmail/disclosure.py). Delivery cannot tell
    whether a source's recipients were chosen by clinical criteria (a campaign knows, delivery does
    not), and transactional mail is PHI by nature, so every figure counts as sensitive."""
    key = f"source:{progress.source_type}:{progress.source_id}"

    def figure(count: int, cell: str) -> Disclosed:
        return disclose(count, tenant=tenant, viewer=viewer, query=f"{key}#{cell}", sensitive=True)

    total = figure(progress.total, "total")
    percent: int | None = None
    if total.value is not None:
        step = 1 if total.exact else 10  # a blurred total gets a blurred share
        percent = step * round(progress.percent_done / step)
    return {
        "total": total,
        "pending": figure(progress.pending, "pending"),
        "delivered": figure(progress.delivered, "delivered"),
        "not_delivered": figure(progress.not_delivered, "not_delivered"),
        "ambiguous_sends": figure(progress.ambiguous_sends, "ambiguous"),
        "rows": [(state, label, figure(count, state)) for state, label, count in progress.rows() if count],
        "percent_done": percent,
    }


def source_progress(*, tenant: Tenant, source_type: str, source_id: str) -> SourceProgress:
    rows = (
        Message.objects.filter(tenant=tenant, source_type=source_type, source_id=source_id)
        .values("state")
        .annotate(
            n=Count("id"), ambiguous=Sum("ambiguous_sends"), first=Min("created_at"), last=Max("updated_at")
        )
        .order_by()
    )
    progress = SourceProgress(source_type, source_id)
    for row in rows:
        progress.counts[row["state"]] = row["n"]
        progress.ambiguous_sends += row["ambiguous"] or 0
        progress.first_queued_at = min(filter(None, [progress.first_queued_at, row["first"]]), default=None)
        progress.last_change_at = max(filter(None, [progress.last_change_at, row["last"]]), default=None)
    if not progress.counts:
        raise NotFound("No messages from this source.")
    return progress


def source_list(*, tenant: Tenant, days: int = 30, limit: int = 50) -> list[SourceProgress]:
    """Recent sources (campaigns, journeys, the API) with their counts per state."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        Message.objects.filter(tenant=tenant, created_at__gte=since)
        .values("source_type", "source_id", "state")
        .annotate(
            n=Count("id"), ambiguous=Sum("ambiguous_sends"), first=Min("created_at"), last=Max("updated_at")
        )
        .order_by()
    )
    sources: dict[tuple[str, str], SourceProgress] = {}
    for row in rows:
        key = (row["source_type"], row["source_id"])
        progress = sources.setdefault(key, SourceProgress(*key))
        progress.counts[row["state"]] = row["n"]
        progress.ambiguous_sends += row["ambiguous"] or 0
        progress.first_queued_at = min(filter(None, [progress.first_queued_at, row["first"]]), default=None)
        progress.last_change_at = max(filter(None, [progress.last_change_at, row["last"]]), default=None)
    ordered = sorted(sources.values(), key=lambda p: p.last_change_at or since, reverse=True)
    return ordered[:limit]


def message_find(*, tenant: Tenant, query: str) -> Message:
    """A message by its id (UUID) or its Message-ID header; NotFound for anything else, including
    another tenant's message."""
    query = query.strip()
    messages = Message.objects.filter(tenant=tenant)
    try:
        found = messages.filter(pk=uuid.UUID(query)).first()
    except ValueError:
        message_id = query if query.startswith("<") else f"<{query}>"
        found = messages.filter(message_id=message_id).first()
    if found is None:
        raise NotFound("No message with this id.")
    return found


def message_get(*, tenant: Tenant, message_id: uuid.UUID) -> Message:
    found = Message.objects.filter(tenant=tenant, pk=message_id).first()
    if found is None:
        raise NotFound("No such message.")
    return found


def masked_address(*, tenant: Tenant, actor: Actor, message: Message, purpose: str) -> str:
    """The recipient as j***@example.org; the read itself is an audited PHI access."""
    with phi_access(actor=actor, tenant=tenant, objects=[message], fields=["to_address"], purpose=purpose):
        return mask(message.to_address, "email")


def message_attempts(*, tenant: Tenant, message: Message) -> list[MessageAttempt]:
    return list(MessageAttempt.objects.filter(tenant=tenant, message=message).order_by("started_at", "id"))


@dataclass
class DomainRow:
    domain: str
    messages: int
    policy: DomainTlsPolicy | None


def domain_table(*, tenant: Tenant, days: int = 30, limit: int = 200) -> list[DomainRow]:
    """The recipient domains this tenant mailed recently, with what is known about their TLS. Only
    the tenant's own domains: which domains other tenants mail is not theirs to see."""
    since = timezone.now() - timedelta(days=days)
    counts = list(
        Message.objects.filter(tenant=tenant, created_at__gte=since)
        .values("to_domain")
        .annotate(n=Count("id"))
        .order_by("-n", "to_domain")[:limit]
    )
    policies = DomainTlsPolicy.objects.in_bulk([row["to_domain"] for row in counts], field_name="domain")
    return [DomainRow(row["to_domain"], row["n"], policies.get(row["to_domain"])) for row in counts]
