"""DNS through one small interface, so policy code never touches the network directly.

`DnsPythonResolver` asks the system's recursive resolver and trusts its AD bit for DNSSEC: that is
only meaningful when the resolver is a local validating one (unbound on 127.0.0.1), the deployment
RFC 7672 expects. Tests use `StaticResolver` and never touch real DNS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from django.conf import settings
from django.utils.module_loading import import_string

DEFAULT_TTL = 300
T = TypeVar("T")


@dataclass(frozen=True)
class MxHost:
    """One MX target. `port`/`address` exist for tests and relays; real MX answers leave them default."""

    preference: int
    host: str
    port: int = 25
    address: str | None = None  # connect here instead of resolving `host` (the name is still verified)


@dataclass(frozen=True)
class Tlsa:
    usage: int  # 2 DANE-TA, 3 DANE-EE (0/1 are unusable for SMTP, RFC 7672 §3.1.3)
    selector: int  # 0 full certificate, 1 SubjectPublicKeyInfo
    matching: int  # 0 exact, 1 SHA-256, 2 SHA-512
    data: bytes


@dataclass(frozen=True)
class Answer(Generic[T]):
    records: tuple[T, ...] = ()
    ttl: int = DEFAULT_TTL
    secure: bool = False  # DNSSEC-validated (AD bit from a validating resolver, or the static map says so)


class Resolver(Protocol):
    def mx(self, domain: str) -> Answer[MxHost]: ...

    def txt(self, name: str) -> Answer[str]: ...

    def tlsa(self, name: str) -> Answer[Tlsa]: ...


def _normalize(name: str) -> str:
    return name.rstrip(".").lower()


@dataclass
class StaticResolver:
    """A fixed map for tests and previews: {"mx": {domain: Answer}, "txt": {...}, "tlsa": {...}}.

    Plain lists are accepted in place of Answers (not DNSSEC-validated, default TTL).
    """

    mx_map: Mapping[str, Answer[MxHost] | list[MxHost]] = field(default_factory=dict)
    txt_map: Mapping[str, Answer[str] | list[str]] = field(default_factory=dict)
    tlsa_map: Mapping[str, Answer[Tlsa] | list[Tlsa]] = field(default_factory=dict)

    @staticmethod
    def _lookup(table: Mapping, name: str) -> Answer:
        for key, value in table.items():
            if _normalize(key) == _normalize(name):
                return value if isinstance(value, Answer) else Answer(tuple(value))
        return Answer()

    def mx(self, domain: str) -> Answer[MxHost]:
        return self._lookup(self.mx_map, domain)

    def txt(self, name: str) -> Answer[str]:
        return self._lookup(self.txt_map, name)

    def tlsa(self, name: str) -> Answer[Tlsa]:
        return self._lookup(self.tlsa_map, name)


class DnsPythonResolver:
    """dnspython against the configured recursive resolver; NXDOMAIN and no-answer are empty answers."""

    def __init__(self, nameservers: list[str] | None = None, lifetime: float = 5.0):
        import dns.flags
        import dns.resolver

        self._resolver = dns.resolver.Resolver()
        if nameservers:
            self._resolver.nameservers = nameservers
        self._resolver.lifetime = lifetime
        # Ask for DNSSEC records and read the AD bit the validating resolver sets.
        self._resolver.use_edns(0, dns.flags.DO, 1232)
        self._ad = dns.flags.AD

    def _query(self, name: str, rdtype: str):
        import dns.exception
        import dns.resolver

        try:
            answer = self._resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers):
            return None, DEFAULT_TTL, False
        except dns.exception.Timeout:
            raise
        secure = bool(answer.response.flags & self._ad)
        ttl = answer.rrset.ttl if answer.rrset is not None else DEFAULT_TTL
        return answer.rrset, ttl, secure

    def mx(self, domain: str) -> Answer[MxHost]:
        rrset, ttl, secure = self._query(domain, "MX")
        hosts = tuple(
            MxHost(preference=r.preference, host=_normalize(r.exchange.to_text())) for r in rrset or ()
        )
        return Answer(hosts, ttl, secure)

    def txt(self, name: str) -> Answer[str]:
        rrset, ttl, secure = self._query(name, "TXT")
        texts = tuple(b"".join(r.strings).decode("utf-8", "replace") for r in rrset or ())
        return Answer(texts, ttl, secure)

    def tlsa(self, name: str) -> Answer[Tlsa]:
        rrset, ttl, secure = self._query(name, "TLSA")
        records = tuple(Tlsa(r.usage, r.selector, r.mtype, bytes(r.cert)) for r in rrset or ())
        return Answer(records, ttl, secure)


def get_resolver() -> Resolver:
    """The resolver settings.DELIVERY_RESOLVER names: "system" (the host's recursive resolver),
    "static" (the zone file settings.DELIVERY_DNS_ZONE_FILE, delivery/tls/zone.py), or a dotted path
    to a class or factory (tests)."""
    choice = getattr(settings, "DELIVERY_RESOLVER", "") or "system"
    if choice == "system":
        return DnsPythonResolver()
    if choice == "static":
        from .zone import ZoneFileError, zone_resolver

        zone_file = getattr(settings, "DELIVERY_DNS_ZONE_FILE", "")
        if not zone_file:
            raise ZoneFileError(
                "DELIVERY_RESOLVER=static needs DELIVERY_DNS_ZONE_FILE (the zone file's path)."
            )
        return zone_resolver(zone_file)
    factory: Callable[[], Resolver] = import_string(choice)
    return factory()
