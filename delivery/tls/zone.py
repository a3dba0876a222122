"""A DNS zone from a file, served through the same Resolver interface as real DNS.

For air-gapped or split-horizon deployments (the operator writes the records they expect) and for the
local mail world of `make run`. Selected with DELIVERY_RESOLVER=static and DELIVERY_DNS_ZONE_FILE.
The file is JSON (`.json`) or TOML (`.toml`):

    {
      "mx":   {"patients.test": [{"preference": 10, "host": "mx.patients.test", "port": 2525}]},
      "a":    {"mx.patients.test": ["127.0.0.1"]},
      "txt":  {"mail.clinic.test": ["v=spf1 include:_spf.example.net ~all"]},
      "tlsa": {"_25._tcp.mx.patients.test": [{"usage": 3, "selector": 1, "matching": 1, "data": "<hex>"}]},
      "secure": ["patients.test"],
      "https": {"mta-sts.clinic.test": {"address": "127.0.0.1", "port": 8443}}
    }

An MX host listed under "a" is dialled at that address (its name is still what TLS verifies); `port`
defaults to 25. An "https" entry is where the MTA-STS policy fetcher dials that host (default: the
host itself on 443); the certificate is still verified against the name. Names under "secure" (and
their sub-names) answer as DNSSEC-validated. A missing name answers empty, as NXDOMAIN does. The file
is read on every lookup batch (get_resolver), so an edit takes effect without a restart.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from healthmail.errors import ApplicationError

from .resolver import Answer, MxHost, StaticResolver, Tlsa


class ZoneFileError(ApplicationError):
    title = "DNS zone file unusable"


def _load(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ZoneFileError(f"Cannot read the DNS zone file {path}: {error.strerror}.") from error
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ZoneFileError(
            f"The DNS zone file {path} is not valid {path.suffix[1:] or 'JSON'}: {error}"
        ) from error
    if not isinstance(data, dict):
        raise ZoneFileError(f"The DNS zone file {path} must hold a table of record types.")
    return data


def _normalize(name: str) -> str:
    return name.rstrip(".").lower()


def _secure(name: str, secure: set[str]) -> bool:
    name = _normalize(name)
    return any(name == zone or name.endswith("." + zone) for zone in secure)


def _mx(entry: dict, addresses: dict[str, list[str]]) -> MxHost:
    try:
        host = _normalize(str(entry["host"]))
        known = addresses.get(host)
        listed = entry.get("address") or (known[0] if known else None)
        return MxHost(int(entry.get("preference", 10)), host, port=int(entry.get("port", 25)), address=listed)
    except (KeyError, TypeError, ValueError) as error:
        raise ZoneFileError(f"An MX record needs a host (and numeric preference/port): {entry!r}") from error


def _tlsa(entry: dict) -> Tlsa:
    try:
        return Tlsa(
            int(entry["usage"]), int(entry["selector"]), int(entry["matching"]), bytes.fromhex(entry["data"])
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ZoneFileError(
            f"A TLSA record needs usage, selector, matching and hex data: {entry!r}"
        ) from error


def zone_resolver(path: str | Path) -> StaticResolver:
    """The resolver answering from the zone file at `path`."""
    data = _load(Path(path))
    secure = {_normalize(name) for name in data.get("secure", [])}
    addresses = {_normalize(name): [str(a) for a in values] for name, values in data.get("a", {}).items()}

    def answers(table: str, build) -> dict[str, Answer]:
        return {
            _normalize(name): Answer(tuple(build(value) for value in values), secure=_secure(name, secure))
            for name, values in data.get(table, {}).items()
        }

    return StaticResolver(
        mx_map=answers("mx", lambda entry: _mx(entry, addresses)),
        txt_map=answers("txt", str),
        tlsa_map=answers("tlsa", _tlsa),
    )


def zone_connect_to(path: str | Path) -> dict[str, tuple[str, int]]:
    """The zone's "https" table as the policy fetcher's connect-to map (host -> (address, port))."""
    connect_to = {}
    for name, entry in _load(Path(path)).get("https", {}).items():
        try:
            connect_to[_normalize(name)] = (str(entry["address"]), int(entry.get("port", 443)))
        except (KeyError, TypeError, ValueError) as error:
            raise ZoneFileError(f"An https entry needs an address (and numeric port): {entry!r}") from error
    return connect_to
