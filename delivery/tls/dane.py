"""DANE for SMTP (RFC 7672): match the server certificate against DNSSEC-validated TLSA records.

Usage 3 (DANE-EE) pins the server's own certificate or key: names and expiry are not checked
(RFC 7672 §3.1.1). Usage 2 (DANE-TA) pins a trust anchor: the server certificate must be issued
directly by it and name the MX host. Python 3.11's ssl module does not expose the peer's chain, so a
DANE-TA digest is matched against the anchors we already hold (the configured CA bundle) or a full
certificate in the record; an anchor known only from the server's chain is not usable here and the
connection is refused for messages that need verified TLS. Usages 0/1 are unusable for SMTP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .resolver import Tlsa

DANE_TA, DANE_EE = 2, 3


def _selected(record: Tlsa, certificate_der: bytes) -> bytes:
    if record.selector == 0:
        return certificate_der
    certificate = x509.load_der_x509_certificate(certificate_der)
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def tlsa_matches(record: Tlsa, certificate_der: bytes) -> bool:
    if record.selector not in (0, 1):
        return False
    data = _selected(record, certificate_der)
    if record.matching == 0:
        return data == record.data
    if record.matching == 1:
        return hashlib.sha256(data).digest() == record.data
    if record.matching == 2:
        return hashlib.sha512(data).digest() == record.data
    return False


def usable(records: Iterable[Tlsa]) -> list[Tlsa]:
    return [
        r
        for r in records
        if r.usage in (DANE_TA, DANE_EE) and r.selector in (0, 1) and r.matching in (0, 1, 2)
    ]


def _name_matches(host: str, certificate: x509.Certificate) -> bool:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    host = host.rstrip(".").lower()
    for name in names.get_values_for_type(x509.DNSName):
        name = name.lower()
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def _issued_by(leaf: x509.Certificate, anchor: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(anchor)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def dane_verify(
    records: Iterable[Tlsa], leaf_der: bytes, *, host: str, anchors_der: Iterable[bytes] = ()
) -> tuple[bool, str]:
    """(matched, reason) for the server's leaf certificate presented on `host`."""
    records = usable(records)
    if not records:
        return False, "no usable TLSA records"
    for record in records:
        if record.usage == DANE_EE and tlsa_matches(record, leaf_der):
            return True, "DANE-EE TLSA match"
    leaf = x509.load_der_x509_certificate(leaf_der)
    candidates = list(anchors_der)
    candidates += [r.data for r in records if r.usage == DANE_TA and r.selector == 0 and r.matching == 0]
    for record in records:
        if record.usage != DANE_TA:
            continue
        for anchor_der in candidates:
            if not tlsa_matches(record, anchor_der):
                continue
            anchor = x509.load_der_x509_certificate(anchor_der)
            if _issued_by(leaf, anchor) and _name_matches(host, leaf):
                return True, "DANE-TA TLSA match"
    return False, "server certificate matches no TLSA record"
