"""The cached TLS policy per recipient domain (DomainTlsPolicy), refreshed when its TTL runs out.

Synchronous on purpose: callers (Celery tasks, the domain page) resolve before running the async
SMTP batch. Not for use inside a running event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from delivery.models import DomainTlsPolicy

from .mta_sts import PolicyFetcher
from .policy import Prober, Source, TlsPolicy, tls_policy_resolve
from .resolver import Resolver


def tls_policy_for_domain(
    *,
    domain: str,
    resolver: Resolver,
    fetcher: PolicyFetcher,
    prober: Prober,
    now: datetime | None = None,
    refresh: bool = False,
) -> TlsPolicy:
    """The cached policy while fresh; otherwise resolve, keep a still-valid MTA-STS policy when the new
    answer would be weaker, and store the result."""
    now = now or timezone.now()
    domain = domain.rstrip(".").lower()
    cached = DomainTlsPolicy.objects.filter(domain=domain).first()
    if cached is not None and not refresh and cached.expires_at > now:
        return TlsPolicy.from_json(cached.policy)
    policy = asyncio.run(tls_policy_resolve(domain, resolver=resolver, fetcher=fetcher, prober=prober))
    policy = _keep_unexpired_mta_sts(policy, cached, now)
    _store(policy, now)
    return policy


def _keep_unexpired_mta_sts(policy: TlsPolicy, cached: DomainTlsPolicy | None, now: datetime) -> TlsPolicy:
    if policy.source in (Source.DANE, Source.MTA_STS) or cached is None or not cached.mta_sts_policy:
        return policy
    if cached.mta_sts_expires_at is None or cached.mta_sts_expires_at <= now:
        return policy
    previous = TlsPolicy.from_json(cached.mta_sts_policy)
    remaining = int((cached.mta_sts_expires_at - now).total_seconds())
    return replace(
        previous,
        mx=policy.mx or previous.mx,
        ttl=min(remaining, policy.ttl or remaining),
        reason=f"{previous.reason}; kept until max_age: a new lookup gave {policy.source} ({policy.reason})",
    )


@transaction.atomic
def _store(policy: TlsPolicy, now: datetime) -> None:
    fields = {
        "source": str(policy.source),
        "mode": policy.mode,
        "verified": policy.verified,
        "reason": policy.reason[:500],
        "policy": policy.to_json(),
        "resolved_at": now,
        "expires_at": now + timedelta(seconds=max(60, policy.ttl)),
    }
    if policy.source == Source.MTA_STS and policy.mta_sts_max_age:
        fields["mta_sts_policy"] = policy.to_json()
        fields["mta_sts_expires_at"] = now + timedelta(seconds=policy.mta_sts_max_age)
    DomainTlsPolicy.objects.update_or_create(domain=policy.domain, defaults=fields)
