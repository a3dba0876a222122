"""The SSL contexts the transport may use. Every one of them refuses anything below TLS 1.2."""

from __future__ import annotations

import ssl

from django.conf import settings


def ca_file_setting() -> str | None:
    """settings.DELIVERY_CA_FILE: a PEM bundle replacing the system trust store (tests use their CA)."""
    return getattr(settings, "DELIVERY_CA_FILE", None) or None


def verified_context(ca_file: str | None = None) -> ssl.SSLContext:
    """PKIX: the chain must reach a trusted CA and the certificate must name the MX host."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname + CERT_REQUIRED by default
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    else:
        context.load_default_certs()
    return context


def dane_context() -> ssl.SSLContext:
    """DANE: the TLSA records are the authentication (checked after the handshake, before any
    command that carries an address or content), so PKIX and name checks are off here."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def trust_anchors_der(context: ssl.SSLContext) -> list[bytes]:
    """The CA certificates a context trusts, for DANE-TA digests (only certificates loaded from a file
    are listed: the default store's directory entries are not enumerable)."""
    return [bytes(der) for der in context.get_ca_certs(binary_form=True)]
