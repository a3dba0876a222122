"""The STARTTLS probe: connect to an MX, upgrade with full verification, note what was negotiated."""

from __future__ import annotations

from delivery.smtp.connection import (
    ConnectFailed,
    MxRoute,
    Requirement,
    TlsRefused,
    TransportSettings,
    close_session,
    open_session,
)

from .policy import Prober, ProbeResult
from .resolver import MxHost


def starttls_prober(transport: TransportSettings) -> Prober:
    async def probe(mx: MxHost) -> ProbeResult:
        try:
            smtp, evidence = await open_session(
                MxRoute.from_mx(mx), requirement=Requirement.VERIFIED, transport=transport
            )
        except TlsRefused as refused:
            return ProbeResult(mx=mx.host, verified=False, reason=refused.reason)
        except ConnectFailed as failed:
            return ProbeResult(mx=mx.host, verified=False, reason=str(failed), reachable=False)
        await close_session(smtp)
        return ProbeResult(mx=mx.host, verified=True, version=evidence.version, cipher=evidence.cipher)

    return probe
