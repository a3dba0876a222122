"""SSRF corpus (RELIABILITY E3, first 60+ payloads): with WEBHOOK_ALLOW_PRIVATE_TARGETS off, no
target that is or resolves to a non-public address, or is written to smuggle one, is accepted."""

from __future__ import annotations

import pytest

from healthmail.egress.ssrf import UnsafeTarget, address_is_public, resolve_target

# Names resolve through this map only (no real DNS in tests): each points somewhere internal.
DNS = {
    "localtest.me": ["127.0.0.1"],
    "metadata.attacker.example": ["169.254.169.254"],
    "intranet.attacker.example": ["10.0.0.5"],
    "mixed.attacker.example": ["93.184.215.14", "192.168.1.1"],
    "v6loop.attacker.example": ["::1"],
    "mapped.attacker.example": ["::ffff:127.0.0.1"],
    "ula.attacker.example": ["fd00:ec2::254"],
    "cgnat.attacker.example": ["100.64.0.1"],
    "public.partner.example": ["93.184.215.14"],
    "public6.partner.example": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
}


def fake_resolve(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise OSError("NXDOMAIN")
    return DNS[host]


REFUSED = [
    # loopback, in every spelling
    "https://127.0.0.1/",
    "https://127.0.0.2/",
    "https://127.255.255.254/",
    "https://0.0.0.0/",
    "https://[::1]/",
    "https://[0:0:0:0:0:0:0:1]/",
    "https://[::]/",
    "https://localhost/",
    "https://LOCALHOST/",
    "https://localhost./",
    "https://app.localhost/",
    # decimal, octal, hex and short forms of 127.0.0.1 / 169.254.169.254
    "https://2130706433/",
    "https://017700000001/",
    "https://0x7f000001/",
    "https://0x7f.0.0.1/",
    "https://0177.0.0.1/",
    "https://127.1/",
    "https://127.0.1/",
    "https://2852039166/",
    "https://0xa9fea9fe/",
    "https://0251.0376.0251.0376/",
    "https://169.254.43518/",
    # private ranges, link-local, metadata, CGNAT, multicast, reserved, broadcast
    "https://10.0.0.1/",
    "https://10.255.255.255/",
    "https://172.16.0.1/",
    "https://172.31.255.254/",
    "https://192.168.0.1/",
    "https://169.254.169.254/latest/meta-data/",
    "https://169.254.0.1/",
    "https://100.64.0.1/",
    "https://100.127.255.254/",
    "https://224.0.0.1/",
    "https://239.255.255.250/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://192.0.2.1/",
    "https://198.18.0.1/",
    # IPv6: mapped, compatible, NAT64, 6to4, Teredo, ULA, link-local, site-local, documentation
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:10.0.0.1]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[64:ff9b::7f00:1]/",
    "https://[2002:7f00:1::]/",
    "https://[2002:a9fe:a9fe::]/",
    "https://[fd00:ec2::254]/",
    "https://[fc00::1]/",
    "https://[fe80::1]/",
    "https://[fe80::1%25eth0]/",
    "https://[fec0::1]/",
    "https://[2001:db8::1]/",
    "https://[ff02::1]/",
    # names that resolve internally (rebinding-style), or partly internally
    "https://localtest.me/",
    "https://metadata.attacker.example/",
    "https://intranet.attacker.example/",
    "https://mixed.attacker.example/",
    "https://v6loop.attacker.example/",
    "https://mapped.attacker.example/",
    "https://ula.attacker.example/",
    "https://cgnat.attacker.example/",
    "https://does-not-exist.example/",
    "https://metadata.google.internal/",
    "https://printer.local/",
    "https://1.0.0.127.in-addr.arpa/",
    # smuggling: credentials, other schemes, plain http, odd ports, broken syntax
    "https://public.partner.example@127.0.0.1/",
    "https://user:pw@public.partner.example/",
    "http://public.partner.example/",
    "ftp://public.partner.example/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "dict://127.0.0.1:11211/",
    "https://public.partner.example:22/",
    "https://public.partner.example:25/",
    "https://public.partner.example:99999/",
    "https://public.partner.example/\r\nHost: internal",
    "https://public.partner.example /x",
    "https://",
    "https:///path",
    "//127.0.0.1/",
    "https://[::1",
    "https://exa mple.com/",
    "https://public.partner.example/#frag",
    "javascript:alert(1)",
    "https://" + "a" * 2100 + ".example/",
    "https://-bad-.example/",
    "https://under_score.example/",
    "https://public.partner.example\x00.evil/",
]

ACCEPTED = [
    "https://public.partner.example/hooks",
    "https://public.partner.example:8443/hooks?x=1",
    "https://public6.partner.example/",
    "https://93.184.215.14/hooks",
    "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hooks",
]


def test_corpus_is_large_enough():
    assert len(REFUSED) >= 50


@pytest.mark.parametrize("url", REFUSED)
def test_refused(url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(UnsafeTarget):
        resolve_target(url, resolve=fake_resolve)


@pytest.mark.parametrize("url", ACCEPTED)
def test_public_targets_are_accepted_and_pinned(url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    target = resolve_target(url, resolve=fake_resolve)
    assert address_is_public(target.address)


def test_the_test_setting_is_what_allows_loopback(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    assert resolve_target("http://127.0.0.1:8080/x", resolve=fake_resolve).address == "127.0.0.1"
