"""DELIVERY_RESOLVER=static: a zone file served through the Resolver interface (delivery/tls/zone.py)."""

import json

import pytest

from delivery.tls.resolver import DnsPythonResolver, MxHost, StaticResolver, get_resolver
from delivery.tls.zone import ZoneFileError, zone_resolver

ZONE = {
    "mx": {"Patients.Test.": [{"preference": 20, "host": "MX.patients.test", "port": 2525}]},
    "a": {"mx.patients.test": ["127.0.0.1"]},
    "txt": {"mail.clinic.test": ["v=spf1 include:_spf.example.net ~all"]},
    "tlsa": {"_25._tcp.mx.patients.test": [{"usage": 3, "selector": 1, "matching": 1, "data": "ab01"}]},
    "secure": ["patients.test"],
}


def test_json_zone_answers_mx_with_port_and_address_txt_and_tlsa(tmp_path):
    path = tmp_path / "zone.json"
    path.write_text(json.dumps(ZONE))
    resolver = zone_resolver(path)
    mx = resolver.mx("patients.test")
    assert mx.records == (MxHost(20, "mx.patients.test", port=2525, address="127.0.0.1"),)
    assert mx.secure  # listed under "secure"
    assert resolver.txt("MAIL.clinic.test.").records == ("v=spf1 include:_spf.example.net ~all",)
    assert not resolver.txt("mail.clinic.test").secure
    [tlsa] = resolver.tlsa("_25._tcp.mx.patients.test").records
    assert (tlsa.usage, tlsa.data) == (3, bytes.fromhex("ab01"))
    assert resolver.tlsa("_25._tcp.mx.patients.test").secure  # a sub-name of a secure zone
    assert resolver.mx("unknown.test").records == ()  # as NXDOMAIN


def test_toml_zone(tmp_path):
    path = tmp_path / "zone.toml"
    path.write_text(
        '[txt]\n"_dmarc.clinic.test" = ["v=DMARC1; p=none"]\n[[mx."clinic.test"]]\nhost = "mx.clinic.test"\n'
    )
    resolver = zone_resolver(path)
    assert resolver.mx("clinic.test").records == (MxHost(10, "mx.clinic.test", port=25, address=None),)
    assert resolver.txt("_dmarc.clinic.test").records == ("v=DMARC1; p=none",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid json"),
        ('["a list"]', "table of record types"),
        ('{"mx": {"a.test": [{"port": 25}]}}', "MX record needs a host"),
        ('{"tlsa": {"x.test": [{"usage": 3}]}}', "TLSA record needs"),
    ],
)
def test_broken_zone_files_are_refused_with_the_reason(tmp_path, text, message):
    path = tmp_path / "zone.json"
    path.write_text(text)
    with pytest.raises(ZoneFileError, match=f"(?i){message}"):
        zone_resolver(path)


def test_get_resolver_follows_the_settings(settings, tmp_path):
    path = tmp_path / "zone.json"
    path.write_text(json.dumps(ZONE))
    settings.DELIVERY_RESOLVER, settings.DELIVERY_DNS_ZONE_FILE = "static", str(path)
    assert get_resolver().txt("mail.clinic.test").records
    path.write_text(json.dumps({"txt": {"mail.clinic.test": ["v=spf1 -all"]}}))  # edits apply at once
    assert get_resolver().txt("mail.clinic.test").records == ("v=spf1 -all",)
    settings.DELIVERY_DNS_ZONE_FILE = ""
    with pytest.raises(ZoneFileError, match="DELIVERY_DNS_ZONE_FILE"):
        get_resolver()
    settings.DELIVERY_DNS_ZONE_FILE = str(tmp_path / "missing.json")
    with pytest.raises(ZoneFileError, match="Cannot read"):
        get_resolver()
    settings.DELIVERY_RESOLVER = "system"
    assert isinstance(get_resolver(), DnsPythonResolver)
    settings.DELIVERY_RESOLVER = "delivery.tls.resolver.StaticResolver"  # the dotted form (tests)
    assert isinstance(get_resolver(), StaticResolver)
