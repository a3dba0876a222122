"""Sender domain reads for the pages (never the private keys)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from delivery.models import DkimKey, DomainPause, SenderDomain, SenderFeedback
from healthmail.errors import NotFound

from .records import DnsRecord, expected_records


def sender_domain_list(*, tenant) -> list[SenderDomain]:
    return list(SenderDomain.objects.filter(tenant=tenant).order_by("domain"))


def sender_domain_get(*, tenant, sender_domain_id: uuid.UUID) -> SenderDomain:
    sender_domain = SenderDomain.objects.filter(tenant=tenant, pk=sender_domain_id).first()
    if sender_domain is None:
        raise NotFound("No such sender domain.")
    return sender_domain


def dkim_key_get(*, tenant, sender_domain: SenderDomain, key_id: uuid.UUID) -> DkimKey:
    key = DkimKey.objects.filter(tenant=tenant, sender_domain=sender_domain, pk=key_id).first()
    if key is None:
        raise NotFound("No such key.")
    return key


def sender_domain_records(*, sender_domain: SenderDomain) -> tuple[list[DkimKey], list[DnsRecord]]:
    keys = list(DkimKey.objects.filter(sender_domain=sender_domain).defer("private_key"))
    return keys, expected_records(sender_domain, keys)


HEALTH_DAYS = 30


@dataclass(frozen=True)
class SenderHealth:
    """What receivers said about a sender domain in the last HEALTH_DAYS days (no patient data)."""

    aggregate_messages: int
    aggregate_failed: int
    aggregate_reports: list[SenderFeedback]
    rejections: Sequence[Mapping[str, object]]  # {cause, status, receiving_domain, stream, count}
    auth_failures: Sequence[Mapping[str, object]]  # {cause, count}
    pauses: list[DomainPause]

    @property
    def dmarc_pass_percent(self) -> int | None:
        if not self.aggregate_messages:
            return None
        return round(100 * (self.aggregate_messages - self.aggregate_failed) / self.aggregate_messages)


def sender_domain_health(*, tenant, sender_domain: SenderDomain) -> SenderHealth:
    since = timezone.now() - timedelta(days=HEALTH_DAYS)
    rows = SenderFeedback.objects.filter(tenant=tenant, domain=sender_domain.domain, received_at__gte=since)
    aggregates = rows.filter(kind=SenderFeedback.Kind.AGGREGATE)
    totals = aggregates.aggregate(messages=Sum("messages"), failed=Sum("failed"))
    rejections = (
        rows.filter(kind=SenderFeedback.Kind.REJECTION)
        .values("cause", "status", "receiving_domain", "stream")
        .annotate(count=Count("id"))
        .order_by("-count")[:50]
    )
    auth_failures = (
        rows.filter(kind=SenderFeedback.Kind.AUTH_FAILURE).values("cause").annotate(count=Count("id"))
    )
    pauses = DomainPause.objects.filter(tenant=tenant, paused_until__gt=timezone.now()).order_by(
        "paused_until"
    )
    return SenderHealth(
        aggregate_messages=totals["messages"] or 0,
        aggregate_failed=totals["failed"] or 0,
        aggregate_reports=list(aggregates.order_by("-received_at")[:20]),
        rejections=list(rejections),
        auth_failures=list(auth_failures.order_by("-count")),
        pauses=list(pauses),
    )


def sender_domain_verified(
    *, tenant, name: str = "", preferred_id: uuid.UUID | None = None
) -> SenderDomain | None:
    """A verified sender domain of the tenant: the one named, else the preferred one while it is still
    verified, else the first by name (the transactional API's default too); None when there is none."""
    domains = SenderDomain.objects.filter(tenant=tenant, status=SenderDomain.Status.VERIFIED)
    if name:
        return domains.filter(domain=name.strip().lower()).first()
    if preferred_id is not None:
        preferred = domains.filter(pk=preferred_id).first()
        if preferred is not None:
            return preferred
    return domains.order_by("domain").first()
