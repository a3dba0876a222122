"""Open one SMTP connection with the TLS the message needs, or refuse before anything is sent.

Nothing that names a patient (the envelope addresses, the content) is written before the TLS
requirement is met: the only commands before the check are EHLO and STARTTLS.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass, field
from enum import StrEnum

import aiosmtplib
from django.conf import settings

from delivery.tls.contexts import ca_file_setting, dane_context, trust_anchors_der, verified_context
from delivery.tls.dane import dane_verify
from delivery.tls.resolver import MxHost, Tlsa

from .outcomes import TlsEvidence
from .timeouts import SmtpTimeouts

MODERN = ("TLSv1.2", "TLSv1.3")


class Requirement(StrEnum):
    VERIFIED = "verified"  # PKIX chain + MX host name (MTA-STS, probe, relay, every PHI message)
    DANE = "dane"  # TLSA records, DNSSEC-validated
    OPPORTUNISTIC = "opportunistic"  # no PHI and no enforced policy: encrypt if possible


class TlsRefused(Exception):
    """The connection cannot carry messages needing verified TLS; `reason` says why (no PHI)."""

    def __init__(self, reason: str, evidence: TlsEvidence):
        super().__init__(reason)
        self.reason = reason
        self.evidence = evidence


class ConnectFailed(Exception):
    """No usable SMTP session (refused, timed out, 4xx/5xx greeting): a temporary condition."""


@dataclass(frozen=True)
class MxRoute:
    host: str  # the name the certificate must carry
    port: int = 25
    address: str | None = None  # dial this address instead of resolving `host`
    username: str = ""  # relay AUTH, only ever sent over verified TLS
    password: str = field(default="", repr=False)

    @classmethod
    def from_mx(cls, mx: MxHost) -> MxRoute:
        return cls(host=mx.host, port=mx.port, address=mx.address)


@dataclass(frozen=True)
class TransportSettings:
    ca_file: str | None = None
    local_hostname: str = "localhost"
    timeouts: SmtpTimeouts = field(default_factory=SmtpTimeouts)  # RFC 5321 §4.5.3.2 (timeouts.py)
    source_address: str = ""  # the local IP every connection binds to (a stream's own); empty: the OS picks
    # A message whose replies take longer than this stalls its connection: the connection's remaining
    # messages move to a new one, and the slow message goes on waiting alone (client.py).
    stall_after: float = 30.0

    @classmethod
    def from_settings(cls) -> TransportSettings:
        return cls(
            ca_file=ca_file_setting(),
            local_hostname=getattr(settings, "DELIVERY_EHLO_HOSTNAME", "localhost"),
            timeouts=SmtpTimeouts.from_settings(),
            stall_after=float(getattr(settings, "DELIVERY_SMTP_STALL_SECONDS", 30.0)),
        )


def describe_tls_error(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed: {error.reason or error.__class__.__name__}"
    return f"TLS handshake failed: {error.__class__.__name__}"


def _source_address(transport: TransportSettings) -> tuple[str, int] | None:
    if not transport.source_address:
        return None
    try:
        return str(ipaddress.ip_address(transport.source_address)), 0
    except ValueError:
        raise ConnectFailed(f"the source address {transport.source_address!r} is not an IP address") from None


def _unbindable(error: BaseException) -> OSError | None:
    """The bind error behind a failed connect (asyncio wraps it), or None for any other failure."""
    cause = error.__cause__ if isinstance(error, aiosmtplib.SMTPException) else error
    if not isinstance(cause, OSError):
        return None
    if cause.errno in (errno.EADDRNOTAVAIL, errno.EADDRINUSE) or "local address" in str(cause):
        return cause
    return None


def _connect_failure(route: MxRoute, source: tuple[str, int] | None, error: BaseException) -> str:
    bind_error = _unbindable(error) if source else None
    if bind_error is not None and source is not None:
        detail = os.strerror(bind_error.errno) if bind_error.errno else str(bind_error)
        return f"cannot bind the source address {source[0]}: {detail}"
    return f"connect to {route.host}:{route.port} failed: {error.__class__.__name__}"


async def _connect(route: MxRoute, transport: TransportSettings) -> aiosmtplib.SMTP:
    source = _source_address(transport)
    smtp = aiosmtplib.SMTP(
        hostname=route.address or route.host,
        port=route.port,
        local_hostname=transport.local_hostname,
        timeout=transport.timeouts.mail,  # EHLO, STARTTLS, AUTH, RSET, QUIT
        source_address=source,
        start_tls=False,
        use_tls=False,
    )
    try:
        await smtp.connect(timeout=transport.timeouts.greeting)
        await smtp.ehlo()
    except (aiosmtplib.SMTPException, OSError) as error:
        smtp.close()
        raise ConnectFailed(_connect_failure(route, source, error)) from error
    return smtp


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


async def open_session(
    route: MxRoute,
    *,
    requirement: Requirement,
    transport: TransportSettings,
    tlsa: tuple[Tlsa, ...] = (),
    policy_source: str = "",
) -> tuple[aiosmtplib.SMTP, TlsEvidence]:
    """A connected, EHLO'd session meeting `requirement`, with the evidence; else TlsRefused."""
    base = TlsEvidence(mx=route.host, port=route.port, policy_source=policy_source)
    smtp = await _connect(route, transport)
    if not smtp.supports_extension("starttls"):
        if requirement is Requirement.OPPORTUNISTIC:
            return smtp, base
        await _quit(smtp)
        raise TlsRefused("STARTTLS not offered", base)
    if requirement is Requirement.VERIFIED:
        context = verified_context(transport.ca_file)
    else:
        context = dane_context()
    try:
        await smtp.starttls(server_hostname=route.host, tls_context=context)
    except (ssl.SSLError, ssl.CertificateError, aiosmtplib.SMTPException, OSError) as error:
        smtp.close()
        cause = error.__cause__ if isinstance(error, aiosmtplib.SMTPException) and error.__cause__ else error
        reason = describe_tls_error(cause)
        if requirement is Requirement.OPPORTUNISTIC:
            # RFC 7435: encryption was only opportunistic; continue in the clear (no PHI here).
            return await _connect(route, transport), base
        raise TlsRefused(reason, base) from error
    evidence = _evidence(smtp, base, requirement)
    if evidence.version not in MODERN:
        await _quit(smtp)
        raise TlsRefused(f"TLS version {evidence.version or 'unknown'} is below TLS 1.2", evidence)
    if requirement is Requirement.DANE:
        leaf = smtp.get_transport_info("ssl_object").getpeercert(binary_form=True) or b""
        anchors = trust_anchors_der(verified_context(transport.ca_file)) if transport.ca_file else []
        matched, reason = dane_verify(tlsa, leaf, host=route.host, anchors_der=anchors)
        if not matched:
            await _quit(smtp)
            raise TlsRefused(f"DANE: {reason}", evidence)
        evidence = TlsEvidence(**{**evidence.as_dict(), "verified": True, "method": "dane"})
    try:
        await smtp.ehlo()  # RFC 3207 §4.2: forget what was learnt before TLS
        if route.username:
            await smtp.login(route.username, route.password)
    except (aiosmtplib.SMTPException, OSError) as error:
        smtp.close()
        raise ConnectFailed(f"session set-up after TLS failed: {error.__class__.__name__}") from error
    return smtp, evidence


def _evidence(smtp: aiosmtplib.SMTP, base: TlsEvidence, requirement: Requirement) -> TlsEvidence:
    ssl_object = smtp.get_transport_info("ssl_object")
    peer = ssl_object.getpeercert(binary_form=True) or b""
    cipher = ssl_object.cipher()
    return TlsEvidence(
        mx=base.mx,
        port=base.port,
        tls=True,
        version=ssl_object.version() or "",
        cipher=cipher[0] if cipher else "",
        peer_certificate_sha256=hashlib.sha256(peer).hexdigest() if peer else "",
        verified=requirement is Requirement.VERIFIED,
        method={"verified": "pkix", "dane": "dane"}.get(requirement, "opportunistic"),
        policy_source=base.policy_source,
    )


async def close_session(smtp: aiosmtplib.SMTP) -> None:
    if smtp.is_connected:
        await _quit(smtp)
