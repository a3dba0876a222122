"""The SSRF guard's own address tables (RELIABILITY E3): a list generated from every IANA
special-purpose block, the cloud metadata endpoints and their IPv4-in-IPv6 and numeric spellings is
refused 100%, whatever the interpreter's `ipaddress` tables say; public addresses still pass; port 0
and ports above 65535 are refused; the connection re-checks the address it dials."""

from __future__ import annotations

import ipaddress
import random
import socket
import threading

import pytest

from delivery.webhooks import sender
from healthmail.egress.addresses import (
    IPV4_SPECIAL,
    IPV6_EMBEDDING,
    IPV6_SPECIAL,
    METADATA,
    address_is_public,
)
from healthmail.egress.ssrf import Target, UnsafeTarget, ensure_connectable, resolve_target

RNG = random.Random(20261206)  # a fixed seed: the same list on every run, still not hand-picked


def _samples(network, count: int = 3) -> list:
    first, last = int(network.network_address), int(network.broadcast_address)
    picks = {first, last, *(RNG.randint(first, last) for _ in range(count))}
    return [
        ipaddress.ip_address(value) if network.version == 4 else ipaddress.IPv6Address(value)
        for value in picks
    ]


def _ipv4_samples() -> list[ipaddress.IPv4Address]:
    blocks = [b for b in (*IPV4_SPECIAL, *METADATA) if b.network.version == 4]
    return sorted({a for block in blocks for a in _samples(block.network)})


def _ipv6_samples() -> list[ipaddress.IPv6Address]:
    blocks = [b for b in (*IPV6_SPECIAL, *METADATA) if b.network.version == 6]
    found = {a for block in blocks for a in _samples(block.network)}
    # Outside global unicast 2000::/3 entirely (IETF reserved): a few from each other /3.
    for prefix in ("::/3", "4000::/3", "6000::/3", "8000::/3", "a000::/3", "c000::/3", "e000::/4"):
        found.update(_samples(ipaddress.IPv6Network(prefix)))
    # IPv4 inside IPv6: mapped, compatible, NAT64 and 6to4 around every special IPv4 sample.
    for v4 in _ipv4_samples():
        value = int(v4)
        found.add(ipaddress.IPv6Address((0xFFFF << 32) | value))  # ::ffff:a.b.c.d
        found.add(ipaddress.IPv6Address(value))  # ::a.b.c.d
        found.add(ipaddress.IPv6Address(int(IPV6_EMBEDDING[0].network.network_address) | value))  # NAT64
        found.add(ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | RNG.getrandbits(64)))  # 6to4
    return sorted(found)


def _numeric_spellings(v4: ipaddress.IPv4Address) -> list[str]:
    """The forms inet_aton and some HTTP stacks accept for the same address."""
    value, octets = int(v4), v4.packed
    return [
        str(value),  # 2130706433
        hex(value),  # 0x7f000001
        ".".join(f"0{b:o}" for b in octets),  # 0177.00.00.01
        ".".join(hex(b) for b in octets),  # 0x7f.0x0.0x0.0x1
        f"{octets[0]}.{int.from_bytes(octets[1:], 'big')}",  # 127.1
    ]


V4 = _ipv4_samples()
V6 = _ipv6_samples()


def _resolver(address: str):
    return lambda host, port: [address]


def test_the_generated_list_is_large_and_covers_what_got_through_before():
    assert len(V4) >= 100
    assert len(V6) >= 500
    for named in ("192.0.0.192", "168.63.129.16", "100.100.100.200", "169.254.169.254"):
        assert ipaddress.ip_address(named) in V4 or not address_is_public(named)
    assert not address_is_public("fd00:ec2::254")


def test_every_special_address_is_refused_as_a_literal_and_through_dns(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    accepted = []
    for address in [*V4, *V6]:
        text = str(address)
        host = f"[{text}]" if address.version == 6 else text
        for url, resolve in (
            (f"https://{host}/hook", _resolver(text)),
            ("https://hooks.partner.example/hook", _resolver(text)),  # a name that resolves to it
        ):
            try:
                resolve_target(url, resolve=resolve)
            except UnsafeTarget:
                continue
            accepted.append(url if "partner" not in url else f"{url} -> {text}")
        if address_is_public(text):
            accepted.append(f"address_is_public({text})")
    assert accepted == []


def test_numeric_spellings_of_special_addresses_are_refused(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    accepted = []
    for address in V4:
        for spelling in _numeric_spellings(address):
            try:
                resolve_target(f"https://{spelling}/hook", resolve=_resolver("93.184.215.14"))
            except UnsafeTarget:
                continue
            accepted.append(spelling)
    assert accepted == []


PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "192.0.1.1",  # just below 192.0.2.0/24 and above 192.0.0.0/24
    "198.20.0.1",  # just above 198.18.0.0/15
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "2002:808:808::1",  # 6to4 around a public IPv4
    "64:ff9b::808:808",  # NAT64 (DNS64) around a public IPv4
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    assert address_is_public(address)
    assert resolve_target("https://hooks.partner.example/", resolve=_resolver(address)).address == address


def test_the_answer_does_not_depend_on_the_interpreters_tables(monkeypatch, settings):
    """CVE-2024-4032: some Python releases called 192.0.0.192 and others public. Lie the same way."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    for cls in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        monkeypatch.setattr(cls, "is_private", property(lambda self: False))
        monkeypatch.setattr(cls, "is_global", property(lambda self: True))
        monkeypatch.setattr(cls, "is_reserved", property(lambda self: False))
    assert ipaddress.ip_address("192.0.0.192").is_global  # the lie is in force
    for text in ("192.0.0.192", "168.63.129.16", "10.0.0.1", "fd00:ec2::254", "::ffff:127.0.0.1"):
        assert not address_is_public(text)
        with pytest.raises(UnsafeTarget):
            resolve_target("https://hooks.partner.example/", resolve=_resolver(text))


@pytest.mark.parametrize("port", ["0", "65536", "99999", "-1"])
def test_port_zero_and_ports_beyond_65535_are_refused(port, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(UnsafeTarget):
        resolve_target(f"https://hooks.partner.example:{port}/", resolve=_resolver("93.184.215.14"))


def test_port_zero_is_refused_even_where_private_targets_are_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    with pytest.raises(UnsafeTarget):
        resolve_target("http://127.0.0.1:0/", resolve=_resolver("127.0.0.1"))
    with pytest.raises(UnsafeTarget):
        ensure_connectable("127.0.0.1", 0)


def test_the_connection_rechecks_the_address_it_dials(settings):
    """A target that passed the check and then names a loopback address (a rebinding race, or a bug
    that skipped the check) is never connected to."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    connections = []

    def accept():
        try:
            connections.append(listener.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    port = listener.getsockname()[1]
    try:
        for scheme in ("http", "https"):
            target = Target(
                scheme=scheme, host="hooks.partner.example", port=port, path="/", address="127.0.0.1"
            )
            result = sender.post(target, body=b"{}", headers={})
            assert result.status is None
            assert result.error == "refused: not a public address"
    finally:
        thread.join()
        listener.close()
    assert connections == []
