"""MTA-STS (RFC 8461): the `_mta-sts` TXT id, the HTTPS policy file, and MX pattern matching."""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .contexts import verified_context

MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 §3.2: senders may limit the policy size
MAX_AGE_LIMIT = 31_557_600  # one year, RFC 8461 §3.2 ("non-negative integer seconds", at most this)
MODES = ("enforce", "testing", "none")


class PolicyError(ValueError):
    """The policy could not be fetched or is not a valid STSv1 policy."""


@dataclass(frozen=True)
class MtaStsPolicy:
    id: str
    mode: str
    mx: tuple[str, ...]
    max_age: int

    def allows(self, host: str) -> bool:
        return any(mx_matches(pattern, host) for pattern in self.mx)


# RFC 8461 3.1, the TXT record: "v=STSv1" first, then ";"-separated fields, one id of 1-32 letters
# and digits, extensions name=value. Field names and values are case-sensitive (%s"...").
_TXT_DELIM = re.compile(r"[ \t]*;[ \t]*")
_TXT_ID = re.compile(r"id=([A-Za-z0-9]{1,32})")
_TXT_EXTENSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}=[\x21-\x3a\x3c\x3e-\x7e]+")
_TXT_START = re.compile(r"v=STSv1[ \t]*;")
# RFC 8461 3.2, the policy file.
_FIELD = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(.*?)[ \t]*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_MX = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
_MAX_AGE = re.compile(r"[0-9]{1,10}")
_EXTENSION_VALUE = re.compile(r"[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?")
_SINGLE_FIELDS = ("version", "mode", "max_age")


def txt_policy(records: tuple[str, ...]) -> tuple[str | None, str]:
    """(the policy id, "") of the single valid `v=STSv1` record, or (None, why there is none).
    Records not beginning with "v=STSv1;" are discarded; zero or several left, or one that is not
    valid, mean no MTA-STS (RFC 8461 3.1). Strings of one record arrive concatenated."""
    candidates = [record for record in records if _TXT_START.match(record)]
    if not candidates:
        return None, "no v=STSv1 TXT record"
    if len(candidates) > 1:
        return None, f"{len(candidates)} v=STSv1 TXT records (exactly one is required)"
    fields = _TXT_DELIM.split(candidates[0])[1:]
    if fields and fields[-1] == "":
        fields.pop()  # a trailing ";" is allowed
    ids = [found.group(1) for found in map(_TXT_ID.fullmatch, fields) if found]
    if len(ids) != 1:
        return None, "the TXT record needs exactly one id of 1 to 32 letters and digits"
    if any(not (_TXT_ID.fullmatch(f) or _TXT_EXTENSION.fullmatch(f)) for f in fields):
        return None, "the TXT record has a malformed field"
    return ids[0], ""


def txt_policy_id(records: tuple[str, ...]) -> str | None:
    return txt_policy(records)[0]


def _lines(text: str) -> list[str]:
    """Policy lines separated by CRLF or LF (RFC 8461 3.2); a bare CR is not a separator."""
    text = re.sub(r"(?:\r?\n)+\Z", "", text)  # the final terminator (and trailing empty lines)
    lines = text.split("\n")
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_policy(text: str, *, policy_id: str) -> MtaStsPolicy:
    """The policy file, exactly as RFC 8461 3.2 defines it; PolicyError says what is wrong."""
    values: dict[str, list[str]] = {}
    for line in _lines(text):
        found = _FIELD.fullmatch(line)
        if found is None or "\r" in line:
            raise PolicyError("malformed policy line")
        values.setdefault(found.group(1), []).append(found.group(2))
    for name in _SINGLE_FIELDS:
        if len(values.get(name, [])) != 1:
            raise PolicyError(f"policy must have exactly one {name} field")
    if values["version"] != ["STSv1"]:
        raise PolicyError("policy version is not STSv1")
    mode = values["mode"][0]
    if mode not in MODES:
        raise PolicyError("policy mode is not enforce, testing or none")
    max_age_text = values["max_age"][0]
    if not _MAX_AGE.fullmatch(max_age_text):
        raise PolicyError("policy max_age is not 1 to 10 plain digits")
    max_age = int(max_age_text)
    if max_age > MAX_AGE_LIMIT:
        raise PolicyError(f"policy max_age above {MAX_AGE_LIMIT}")
    mx_values = values.get("mx", [])
    bad = [value for value in mx_values if not _MX.fullmatch(value) or len(value) > 253]
    if bad:
        raise PolicyError("policy mx is not a host name or *.suffix pattern")
    if mode != "none" and not mx_values:
        raise PolicyError("policy lists no mx")
    for name, entries in values.items():
        if name not in (*_SINGLE_FIELDS, "mx") and not all(_EXTENSION_VALUE.fullmatch(e) for e in entries):
            raise PolicyError("policy extension field is malformed")
    mx = tuple(dict.fromkeys(value.lower() for value in mx_values))
    return MtaStsPolicy(id=policy_id, mode=mode, mx=mx, max_age=max_age)


def mx_matches(pattern: str, host: str) -> bool:
    """`*.example.net` matches exactly one extra leftmost label (RFC 8461 4.1)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, dot, rest = host.partition(".")
        return bool(head) and bool(dot) and rest == pattern[2:]
    return pattern == host


def media_type_is_text_plain(content_type: str) -> bool:
    """RFC 8461 3.2: the media type is text/plain; its parameters (charset) do not matter."""
    return content_type.split(";", 1)[0].strip().lower() == "text/plain"


class PolicyFetcher(Protocol):
    def fetch(self, domain: str) -> str: ...


class HttpsPolicyFetcher:
    """GET https://mta-sts.<domain>/.well-known/mta-sts.txt with PKIX verification, no redirects.

    `connect_to` maps a host name to the (address, port) actually dialled, so tests can serve the
    policy from a loopback HTTPS server while the certificate is still checked against the real name.
    """

    def __init__(
        self,
        *,
        ca_file: str | None = None,
        connect_to: Mapping[str, tuple[str, int]] | None = None,
        timeout: float = 10.0,
    ):
        self.context = verified_context(ca_file)
        self.connect_to = dict(connect_to or {})
        self.timeout = timeout

    def fetch(self, domain: str) -> str:
        host = f"mta-sts.{domain.rstrip('.').lower()}"
        address, port = self.connect_to.get(host, (host, 443))
        try:
            raw = socket.create_connection((address, port), timeout=self.timeout)
            tls = self.context.wrap_socket(raw, server_hostname=host)
        except (OSError, ssl.SSLError) as error:
            raise PolicyError(f"policy host unreachable or unverified: {error.__class__.__name__}") from error
        connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.context)
        connection.sock = tls  # already connected and verified against `host`
        try:
            connection.request("GET", "/.well-known/mta-sts.txt", headers={"Host": host})
            response = connection.getresponse()
            if response.status != 200:  # redirects are not followed (RFC 8461 §3.3)
                raise PolicyError(f"policy fetch answered HTTP {response.status}")
            if not media_type_is_text_plain(response.getheader("Content-Type", "")):
                raise PolicyError("policy media type is not text/plain")
            body = response.read(MAX_POLICY_BYTES + 1)
        except (OSError, http.client.HTTPException) as error:
            raise PolicyError(f"policy fetch failed: {error.__class__.__name__}") from error
        finally:
            connection.close()
        if len(body) > MAX_POLICY_BYTES:
            raise PolicyError("policy too large")
        try:
            return body.decode("utf-8")  # US-ASCII fields; UTF-8 only in extension values
        except UnicodeDecodeError as error:
            raise PolicyError("policy is not UTF-8 text") from error


def policy_fetcher_from_settings(*, ca_file: str | None) -> HttpsPolicyFetcher:
    """The fetcher the engine uses: with DELIVERY_RESOLVER=static it dials the policy hosts the zone
    file's "https" table names (the local mail world, split-horizon set-ups), otherwise host:443."""
    from django.conf import settings

    connect_to: dict[str, tuple[str, int]] = {}
    zone_file = getattr(settings, "DELIVERY_DNS_ZONE_FILE", "")
    if getattr(settings, "DELIVERY_RESOLVER", "") == "static" and zone_file:
        from .zone import zone_connect_to

        connect_to = zone_connect_to(zone_file)
    return HttpsPolicyFetcher(ca_file=ca_file, connect_to=connect_to)
