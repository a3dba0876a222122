"""Our own tables of addresses a webhook may never reach, from the IANA IPv4 and IPv6 Special-Purpose
Address Registries (RFC 6890 and its successors), the multicast ranges, and the cloud metadata and
host-agent endpoints. Deliberately independent of `ipaddress.is_private`/`is_global`: their tables
were wrong in some Python releases (CVE-2024-4032: 192.0.0.192 and others counted as public in
3.11.7), so the answer must not change with the interpreter. Only integer range checks are used.

Public means: IPv4 outside every block below; IPv6 inside global unicast 2000::/3 and outside every
block below, with the IPv4 address inside 6to4 (2002::/16) and well-known NAT64 (64:ff9b::/96)
unwrapped and checked too. IPv4-mapped (::ffff:0:0/96) and IPv4-compatible (::/96) forms are never
public (they lie outside 2000::/3): DNS has no reason to return them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Block:
    network: Network
    name: str
    source: str


def _blocks(rows: list[tuple[str, str, str]]) -> tuple[Block, ...]:
    return tuple(Block(ipaddress.ip_network(net), name, source) for net, name, source in rows)


# IANA IPv4 Special-Purpose Address Registry, every entry (whole /24 for 192.0.0.0/24: its globally
# reachable /32s are anycast services nobody runs a webhook receiver on), plus multicast and limited
# broadcast.
IPV4_SPECIAL = _blocks(
    [
        ("0.0.0.0/8", "this network", "RFC 791"),
        ("10.0.0.0/8", "private use", "RFC 1918"),
        ("100.64.0.0/10", "shared address space (CGNAT)", "RFC 6598"),
        ("127.0.0.0/8", "loopback", "RFC 1122"),
        ("169.254.0.0/16", "link local (cloud metadata 169.254.169.254)", "RFC 3927"),
        ("172.16.0.0/12", "private use", "RFC 1918"),
        ("192.0.0.0/24", "IETF protocol assignments (incl. 192.0.0.192)", "RFC 6890"),
        ("192.0.0.0/29", "IPv4 service continuity prefix (DS-Lite)", "RFC 7335"),
        ("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
        ("192.0.0.9/32", "port control protocol anycast", "RFC 7723"),
        ("192.0.0.10/32", "traversal using relays around NAT anycast", "RFC 8155"),
        ("192.0.0.170/31", "NAT64/DNS64 discovery", "RFC 7050"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
        ("192.31.196.0/24", "AS112-v4", "RFC 7535"),
        ("192.52.193.0/24", "AMT", "RFC 7450"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
        ("192.168.0.0/16", "private use", "RFC 1918"),
        ("192.175.48.0/24", "direct delegation AS112 service", "RFC 7534"),
        ("198.18.0.0/15", "benchmarking", "RFC 2544"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
        ("224.0.0.0/4", "multicast", "RFC 5771"),
        ("240.0.0.0/4", "reserved", "RFC 1112"),
        ("255.255.255.255/32", "limited broadcast", "RFC 919"),
    ]
)

# IANA IPv6 Special-Purpose Address Registry, every entry, plus what lies outside global unicast.
IPV6_SPECIAL = _blocks(
    [
        ("::/128", "unspecified", "RFC 4291"),
        ("::1/128", "loopback", "RFC 4291"),
        ("::/96", "IPv4-compatible (deprecated)", "RFC 4291"),
        ("::ffff:0:0/96", "IPv4-mapped", "RFC 4291"),
        ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", "RFC 8215"),
        ("100::/64", "discard-only", "RFC 6666"),
        ("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780"),
        ("2001::/23", "IETF protocol assignments", "RFC 2928"),
        ("2001::/32", "Teredo", "RFC 4380"),
        ("2001:1::1/128", "port control protocol anycast", "RFC 7723"),
        ("2001:1::2/128", "traversal using relays around NAT anycast", "RFC 8155"),
        ("2001:1::3/128", "DNS-SD service registration protocol anycast", "RFC 9665"),
        ("2001:2::/48", "benchmarking", "RFC 5180"),
        ("2001:3::/32", "AMT", "RFC 7450"),
        ("2001:4:112::/48", "AS112-v6", "RFC 7535"),
        ("2001:10::/28", "deprecated ORCHID", "RFC 4843"),
        ("2001:20::/28", "ORCHIDv2", "RFC 7343"),
        ("2001:30::/28", "drone remote ID DETs", "RFC 9374"),
        ("2001:db8::/32", "documentation", "RFC 3849"),
        ("2620:4f:8000::/48", "direct delegation AS112 service", "RFC 7534"),
        ("3fff::/20", "documentation", "RFC 9637"),
        ("5f00::/16", "segment routing SIDs", "RFC 9602"),
        ("fc00::/7", "unique local (AWS metadata fd00:ec2::254)", "RFC 4193"),
        ("fe80::/10", "link local", "RFC 4291"),
        ("fec0::/10", "site local (deprecated)", "RFC 3879"),
        ("ff00::/8", "multicast", "RFC 4291"),
    ]
)

# Well-known NAT64 (64:ff9b::/96) and 6to4 (2002::/16): global in the registry, but the IPv4 address
# inside decides. They are listed so the generated test walks them with embedded special addresses.
IPV6_EMBEDDING = _blocks(
    [
        ("64:ff9b::/96", "IPv4/IPv6 translation (NAT64)", "RFC 6052"),
        ("2002::/16", "6to4", "RFC 3056"),
    ]
)

# Cloud metadata and host-agent endpoints outside the blocks above (those inside are listed anyway).
METADATA = _blocks(
    [
        ("169.254.169.254/32", "AWS, GCP, Azure, OCI, DigitalOcean instance metadata", "cloud"),
        ("169.254.170.2/32", "AWS ECS task metadata", "cloud"),
        ("168.63.129.16/32", "Azure WireServer host agent (a public address)", "cloud"),
        ("100.100.100.200/32", "Alibaba Cloud instance metadata", "cloud"),
        ("192.0.0.192/32", "Oracle Cloud instance metadata", "cloud"),
        ("fd00:ec2::254/128", "AWS instance metadata over IPv6", "cloud"),
    ]
)

_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = IPV6_EMBEDDING[0].network
_SIX_TO_FOUR = IPV6_EMBEDDING[1].network


def _ranges(blocks: tuple[Block, ...]) -> tuple[tuple[int, int], ...]:
    return tuple((int(b.network.network_address), int(b.network.broadcast_address)) for b in blocks)


_V4 = _ranges(IPV4_SPECIAL + tuple(b for b in METADATA if b.network.version == 4))
_V6 = _ranges(IPV6_SPECIAL + tuple(b for b in METADATA if b.network.version == 6))


def _inside(value: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(first <= value <= last for first, last in ranges)


def _ipv4_public(value: int) -> bool:
    return not _inside(value, _V4)


def address_is_public(text: str) -> bool:
    """True only for an address a webhook may connect to. Zone ids (fe80::1%eth0) are refused."""
    if "%" in text:
        return False
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    value = int(address)
    if address.version == 4:
        return _ipv4_public(value)
    if not (int(_GLOBAL_UNICAST.network_address) <= value <= int(_GLOBAL_UNICAST.broadcast_address)):
        return False if address not in _NAT64 else _ipv4_public(value & 0xFFFFFFFF)
    if _inside(value, _V6):
        return False
    if address in _SIX_TO_FOUR:
        return _ipv4_public((value >> 80) & 0xFFFFFFFF)
    return True


def port_allowed(port: int | None) -> bool:
    """TCP ports 1-65535 only (0 means "any" to some stacks; above 65535 wraps in others)."""
    return port is not None and 0 < port <= 65535
