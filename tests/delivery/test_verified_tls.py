"""RELIABILITY E1: PHI travels only over verified TLS >= 1.2; every other path refuses, with a reason,
before an address or a byte of content is written."""

import hashlib
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from delivery.smtp.client import deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.outcomes import Status
from delivery.tls.policy import Source, TlsPolicy

from .conftest import PHI_DIAGNOSIS, PHI_NAME, phi_message, run

PROBED = TlsPolicy(domain="example.test", source=Source.STARTTLS_PROBE)
RECIPIENT = b"zebediah.q@patients.test"


def _send(kit, kind, messages, transport, policy=PROBED):
    return run(deliver_batch(MxRoute.from_mx(kit[kind].mx()), messages, policy, transport=transport))


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("plain", "STARTTLS not offered"),
        ("untrusted", "certificate verification failed: unable to get local issuer certificate"),
        ("selfsigned", "certificate verification failed: self-signed certificate"),
        ("expired", "certificate verification failed: certificate has expired"),
        ("oldtls", "TLS handshake failed"),
    ],
)
def test_phi_never_reaches_a_server_without_verified_tls(kit, transport, kind, reason):
    messages = [phi_message(f"m{i}", RECIPIENT.decode()) for i in range(3)]

    outcomes = _send(kit, kind, messages, transport)

    assert [o.status for o in outcomes] == [Status.REFUSED] * 3
    assert all(o.reason.startswith(reason) for o in outcomes), outcomes[0].reason
    server = kit[kind]
    assert server.connections == 1  # it was tried, and refused before any transaction
    for secret in (PHI_NAME.encode(), PHI_DIAGNOSIS.encode(), RECIPIENT, b"MAIL FROM", b"RCPT TO"):
        assert not server.saw(secret), secret
    assert server.messages == []


def test_verified_delivery_is_encrypted_on_the_wire_and_carries_evidence(kit, transport):
    outcomes = _send(kit, "good", [phi_message("m1", RECIPIENT.decode())], transport)

    (outcome,) = outcomes
    assert outcome.status == Status.DELIVERED
    assert outcome.code == 250
    evidence = outcome.evidence
    assert evidence.verified
    assert evidence.method == "pkix"
    assert evidence.mx == "mx.good.test"
    assert evidence.version in ("TLSv1.2", "TLSv1.3")
    assert evidence.cipher
    server = kit["good"]
    certificate = x509.load_pem_x509_certificate(open(server_cert_path(kit), "rb").read())
    assert (
        evidence.peer_certificate_sha256 == hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
    )
    # The server got the PHI after decryption; an eavesdropper on the socket did not.
    assert PHI_NAME.encode() in bytes(server.received_bytes)
    assert PHI_NAME.encode() not in server.wire
    assert RECIPIENT not in server.wire
    # REQUIRETLS (RFC 8689) was used because the server offered it.
    assert evidence.requiretls
    assert server.messages[0].mail_options == ["REQUIRETLS"]


def server_cert_path(kit):
    return kit.ca.directory / "mx.good.test.crt"


def test_notice_without_phi_may_use_plaintext_but_phi_in_the_same_batch_is_refused(kit, transport):
    notice = phi_message("notice", "someone@patients.test", phi=False, body="You have a secure message.\n")
    secret = phi_message("secret", RECIPIENT.decode())

    outcomes = _send(kit, "plain", [secret, notice], transport)

    assert [(o.key, o.status) for o in outcomes] == [("secret", Status.REFUSED), ("notice", Status.DELIVERED)]
    assert outcomes[1].evidence.tls is False
    assert outcomes[1].evidence.method == "none"
    assert b"You have a secure message" in kit["plain"].wire
    assert not kit["plain"].saw(PHI_NAME.encode())
    assert not kit["plain"].saw(RECIPIENT)


def test_enforced_policy_refuses_even_messages_without_phi(kit, transport):
    enforced = TlsPolicy(
        domain="plain.test", source=Source.MTA_STS, mode="enforce", mx_patterns=("mx.plain.test",)
    )
    notice = phi_message("notice", "someone@plain.test", phi=False)

    (outcome,) = _send(kit, "plain", [notice], transport, policy=enforced)

    assert outcome.status == Status.REFUSED
    assert outcome.reason == "STARTTLS not offered"
    assert kit["plain"].messages == []


def test_old_tls_server_really_speaks_tls_1_1_and_is_refused(kit, transport):
    """The refusal above is ours, not an artefact: an old-TLS client does get TLS 1.1 from it."""
    import socket
    import ssl

    server = kit["oldtls"]
    old_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old_client.check_hostname, old_client.verify_mode = False, ssl.CERT_NONE
    old_client.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old_client.minimum_version, old_client.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        reader = raw.makefile("rb")
        reader.readline()
        raw.sendall(b"EHLO old.client\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        raw.sendall(b"STARTTLS\r\n")
        assert reader.readline().startswith(b"220")
        try:
            with old_client.wrap_socket(raw, server_hostname="mx.oldtls.test") as tls:
                negotiated = tls.version()
        except ssl.SSLError as error:  # this OpenSSL build cannot speak TLS < 1.2 at all
            pytest.skip(f"OpenSSL refuses TLS 1.1 entirely here ({error.reason}); the client refusal stands")
    assert negotiated == "TLSv1.1"
