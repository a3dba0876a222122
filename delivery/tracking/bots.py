"""Is an open or click a machine? Mail security scanners follow every link and fetch every image
seconds after delivery; Apple Mail Privacy Protection prefetches images through Apple's proxies.
Such events are stored (for the record) but flagged and left out of engagement counts."""

from __future__ import annotations

import datetime
import ipaddress
import re

PREFETCH_WINDOW = datetime.timedelta(seconds=2)
# Apple's Mail Privacy Protection proxies fetch from Apple's own 17.0.0.0/8.
APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
SCANNER_AGENTS = re.compile(
    r"barracuda|mimecast|proofpoint|symantec|messagelabs|forcepoint|trendmicro|sophos|fortiguard"
    r"|cisco ?ironport|safelinks|microsoft office/.*protection|bitdefender|zscaler|paloalto"
    r"|bot\b|spider|crawler|headlesschrome|phantomjs|python-requests|python-urllib|curl/|wget/"
    r"|go-http-client|java/|okhttp|libwww|httpclient|scanner|preview",
    re.IGNORECASE,
)


def bot_reason(
    *,
    user_agent: str,
    ip: str | None,
    occurred_at: datetime.datetime,
    delivered_at: datetime.datetime | None,
    method: str = "GET",
) -> str:
    """Why this event looks automated ("" when it looks human)."""
    if method == "HEAD":
        return "head_request"
    if not user_agent.strip():
        return "no_user_agent"
    if SCANNER_AGENTS.search(user_agent):
        return "scanner_agent"
    if ip:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            address = None
        if address is not None and any(address in network for network in APPLE_NETWORKS):
            return "apple_mpp"
    if delivered_at is not None and occurred_at - delivered_at < PREFETCH_WINDOW:
        return "too_soon_after_delivery"
    return ""
