"""The TLS policy of a recipient domain: DANE, else MTA-STS, else what a STARTTLS probe showed.

`tls_policy_resolve()` is pure (DNS, HTTPS and SMTP through injected parts, no database); the
cached, TTL-bound copy lives in DomainTlsPolicy (delivery/tls/store.py).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from .dane import usable
from .mta_sts import MtaStsPolicy, PolicyError, PolicyFetcher, mx_matches, parse_policy, txt_policy
from .resolver import MxHost, Resolver, Tlsa

logger = logging.getLogger(__name__)
PROBE_TTL = 3600
FAILURE_TTL = 300
MAX_TTL = 86_400


class Source(StrEnum):
    DANE = "dane"
    MTA_STS = "mta-sts"
    STARTTLS_PROBE = "starttls-probe"
    RELAY = "relay"
    NONE = "none"


@dataclass(frozen=True)
class ProbeResult:
    mx: str
    verified: bool
    version: str = ""
    cipher: str = ""
    reason: str = ""
    reachable: bool = True  # False: no SMTP session at all, which says nothing about the host's TLS


Prober = Callable[[MxHost], Awaitable[ProbeResult]]


@dataclass(frozen=True)
class TlsPolicy:
    domain: str
    source: Source
    mode: str = "none"  # enforce | testing | none
    mx: tuple[MxHost, ...] = ()
    mx_patterns: tuple[str, ...] = ()  # MTA-STS
    tlsa: dict[str, tuple[Tlsa, ...]] = field(default_factory=dict)  # per MX host (DANE)
    verified: bool | None = None  # probe result; None: checked on every connection instead
    tls_version: str = ""
    cipher: str = ""
    reason: str = ""
    ttl: int = FAILURE_TTL
    mta_sts_id: str = ""
    mta_sts_max_age: int = 0

    @property
    def enforced(self) -> bool:
        """Every message to this domain needs authenticated TLS, PHI or not."""
        return self.mode == "enforce"

    def mx_allowed(self, host: str) -> bool:
        if self.source != Source.MTA_STS:
            return True
        return any(mx_matches(pattern, host) for pattern in self.mx_patterns)

    def to_json(self) -> dict:
        data = asdict(self)
        data["tlsa"] = {
            host: [[r.usage, r.selector, r.matching, base64.b64encode(r.data).decode()] for r in records]
            for host, records in self.tlsa.items()
        }
        return data

    @classmethod
    def from_json(cls, data: dict) -> TlsPolicy:
        return cls(
            **{
                **data,
                "source": Source(data["source"]),
                "mx": tuple(MxHost(**mx) for mx in data["mx"]),
                "mx_patterns": tuple(data["mx_patterns"]),
                "tlsa": {
                    host: tuple(Tlsa(u, s, m, base64.b64decode(d)) for u, s, m, d in records)
                    for host, records in data["tlsa"].items()
                },
            }
        )


def relay_policy(host: str) -> TlsPolicy:
    """A smart host: verified TLS always, whatever the recipient domain publishes."""
    return TlsPolicy(domain="", source=Source.RELAY, mode="enforce", reason=f"relay through {host}")


def _mx_hosts(domain: str, resolver: Resolver) -> tuple[tuple[MxHost, ...], int, bool]:
    answer = resolver.mx(domain)
    hosts = tuple(sorted(answer.records, key=lambda mx: (mx.preference, mx.host)))
    if not hosts:  # RFC 5321 §5.1: the implicit MX is the domain itself
        hosts = (MxHost(0, domain),)
    return hosts, answer.ttl, answer.secure


def _dane(domain: str, hosts: tuple[MxHost, ...], ttl: int, resolver: Resolver) -> TlsPolicy | None:
    records: dict[str, tuple[Tlsa, ...]] = {}
    for mx in hosts:
        # The TLSA name always names port 25: tests dial other ports, the published name does not change.
        answer = resolver.tlsa(f"_25._tcp.{mx.host}")
        if answer.secure and usable(answer.records):
            records[mx.host] = tuple(answer.records)
            ttl = min(ttl, answer.ttl)
    if not records:
        return None
    # RFC 7672 §2.2.1: MX hosts without TLSA are still usable, with their own (PKIX) verification;
    # we keep only the DANE-secured ones so no message to a DANE domain is authenticated less.
    return TlsPolicy(
        domain=domain,
        source=Source.DANE,
        mode="enforce",
        mx=tuple(mx for mx in hosts if mx.host in records),
        tlsa=records,
        reason=f"DNSSEC-validated TLSA for {len(records)} of {len(hosts)} MX hosts",
        ttl=min(ttl, MAX_TTL),
    )


def _mta_sts(
    domain: str, hosts, ttl: int, resolver: Resolver, fetcher: PolicyFetcher
) -> TlsPolicy | str | None:
    """A policy, or a reason string when MTA-STS is announced but unusable, or None when absent.

    The cache entry lives as long as the DNS answers (so a new policy id is noticed); the policy
    itself stays in force for max_age even if later lookups fail (delivery/tls/store.py).
    """
    txt = resolver.txt(f"_mta-sts.{domain}")
    policy_id, why = txt_policy(txt.records)
    if policy_id is None:
        if txt.records:  # something was published: say why it does not count
            logger.info("MTA-STS: no policy", extra={"domain": domain, "reason": why})
        return None
    try:
        sts: MtaStsPolicy = parse_policy(fetcher.fetch(domain), policy_id=policy_id)
    except PolicyError as error:
        logger.info("MTA-STS: policy unusable", extra={"domain": domain, "reason": str(error)})
        return f"MTA-STS announced but unusable: {error}"
    if sts.mode == "none":
        return None
    return TlsPolicy(
        domain=domain,
        source=Source.MTA_STS,
        mode=sts.mode,
        mx=hosts,
        mx_patterns=sts.mx,
        reason=f"MTA-STS {sts.mode} (id {sts.id}, max_age {sts.max_age}s)",
        ttl=min(sts.max_age, ttl, txt.ttl, MAX_TTL),
        mta_sts_id=sts.id,
        mta_sts_max_age=sts.max_age,
    )


async def _probe(hosts: tuple[MxHost, ...], prober: Prober) -> ProbeResult:
    """The first MX host, in preference order, that answers (RFC 5321 §5.1: senders move on too)."""
    for mx in hosts:
        probe = await prober(mx)
        if probe.reachable:
            return probe
    return probe


async def tls_policy_resolve(
    domain: str, *, resolver: Resolver, fetcher: PolicyFetcher, prober: Prober
) -> TlsPolicy:
    domain = domain.rstrip(".").lower()
    hosts, ttl, secure = _mx_hosts(domain, resolver)
    if secure:
        dane = _dane(domain, hosts, ttl, resolver)
        if dane is not None:
            return dane
    sts = _mta_sts(domain, hosts, ttl, resolver, fetcher)
    if isinstance(sts, TlsPolicy):
        return sts
    note = f"{sts}; " if isinstance(sts, str) else ""
    probe = await _probe(hosts, prober)
    if probe.verified:
        return TlsPolicy(
            domain=domain,
            source=Source.STARTTLS_PROBE,
            mx=hosts,
            verified=True,
            tls_version=probe.version,
            cipher=probe.cipher,
            reason=f"{note}STARTTLS with a verified certificate on {probe.mx}",
            ttl=min(ttl, PROBE_TTL),
        )
    return TlsPolicy(
        domain=domain,
        source=Source.NONE,
        mx=hosts,
        verified=False,
        tls_version=probe.version,
        cipher=probe.cipher,
        reason=f"{note}no verified TLS on {probe.mx}: {probe.reason}",
        ttl=FAILURE_TTL,
    )
