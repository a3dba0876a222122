"""A small certificate authority for loopback TLS servers (the dev mail world and the test kit).

`CertificateAuthority(directory)` makes a fresh CA (tests); `CertificateAuthority.persistent(dir)`
keeps its key and certificate in `dir` (mode 0600) and reuses them on later runs (`make run`).
"""

from __future__ import annotations

import datetime
import os
import ssl
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_private(path: Path, data: bytes) -> str:
    """Create or replace a file readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return str(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    """`issue()` writes a server certificate + key for the given DNS names, signed by this CA."""

    def __init__(
        self,
        directory: Path,
        common_name: str = "HealthMail Test CA",
        *,
        days: int = 30,
        key: ec.EllipticCurvePrivateKey | None = None,
        certificate: x509.Certificate | None = None,
    ):
        self.directory = Path(directory)
        self.days = days
        slug = common_name.lower().replace(" ", "-")
        if key is None or certificate is None:
            now = datetime.datetime.now(datetime.UTC)
            key = ec.generate_private_key(ec.SECP256R1())
            certificate = (
                x509.CertificateBuilder()
                .subject_name(_name(common_name))
                .issuer_name(_name(common_name))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
                )
                .sign(key, hashes.SHA256())
            )
        self.key, self.certificate = key, certificate
        self.ca_file = write_private(self.directory / f"{slug}.pem", self.certificate_pem)

    @classmethod
    def persistent(
        cls, directory: Path, common_name: str = "HealthMail Dev CA", *, days: int = 825
    ) -> CertificateAuthority:
        """The CA kept in `directory` (made on first use; a new one once it is about to expire)."""
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path = directory / "ca.key"
        cert_path = directory / "ca.crt"
        if key_path.exists() and cert_path.exists():
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=7)
            if certificate.not_valid_after_utc > soon:
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                if isinstance(key, ec.EllipticCurvePrivateKey):  # another kind is not ours: made anew below
                    return cls(directory, common_name, days=days, key=key, certificate=certificate)
        ca = cls(directory, common_name, days=days)
        write_private(key_path, _key_pem(ca.key))
        write_private(cert_path, ca.certificate_pem)
        return ca

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def issue(self, *names: str, self_signed: bool = False, expired: bool = False) -> tuple[str, str, bytes]:
        """(cert_file, key_file, leaf DER)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=self.days)
        if expired:
            start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
        issuer, signer = (_name(names[0]), key) if self_signed else (self.certificate.subject, self.key)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )
        stem = names[0].replace("*", "star")
        cert_file = write_private(
            self.directory / f"{stem}.crt", certificate.public_bytes(serialization.Encoding.PEM)
        )
        key_file = write_private(self.directory / f"{stem}.key", _key_pem(key))
        return cert_file, key_file, certificate.public_bytes(serialization.Encoding.DER)


def server_context(cert_file: str, key_file: str, *, old_tls_only: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    if old_tls_only:
        # OpenSSL 3 only negotiates TLS 1.0/1.1 at security level 0; this server then really speaks
        # TLS 1.1 at most (tests/delivery/test_servers_kit.py proves it with an old-TLS client), and
        # our client, whose minimum is TLS 1.2, must refuse it.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # deprecated on purpose: this server must be outdated
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context
