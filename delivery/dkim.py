"""DKIM signing (RFC 6376, relaxed/relaxed) with `cryptography`: RSA-2048 PKCS#1 v1.5 SHA-256, and
Ed25519 (RFC 8463). Canonicalization is implemented here; dkimpy's pure-Python RSA is ~10x slower,
so it is only used in tests, as the independent verifier.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

# Headers signed. Each is over-signed (RFC 6376 §8.15): named once more than it occurs - once even
# when absent - so an instance added in transit (a second Subject or From shown to the patient, a
# Reply-To, a List-Unsubscribe pointing elsewhere, another Content-Type) breaks the signature.
SIGNED_HEADERS = (
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "mime-version", "content-type",
    "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post",
)  # fmt: skip
# Signed as present but not over-signed: a mailbox provider's feedback loop may legitimately add its own.
SIGNED_ONLY = ("feedback-id",)
_WSP_RUN = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")


@dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: str  # rsa-sha256 | ed25519-sha256
    private_key_pem: str


def generate_key(algorithm: str = "rsa-sha256") -> tuple[str, str]:
    """(private key PEM, public p= value for DNS)."""
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if algorithm == "ed25519-sha256":
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, base64.b64encode(public).decode()


def dns_record(public_key: str, algorithm: str = "rsa-sha256") -> str:
    """The TXT value to publish at <selector>._domainkey.<domain>."""
    return f"v=DKIM1; k={'ed25519' if algorithm == 'ed25519-sha256' else 'rsa'}; p={public_key}"


def canonical_body(body: bytes) -> bytes:
    """Relaxed body canonicalization (RFC 6376 §3.4.4)."""
    # The substitutions cost more than the rest of the signature; most bodies need neither.
    if b"\t" in body or b"  " in body:
        body = _WSP_RUN.sub(b" ", body)
    if b" \r\n" in body:
        body = _TRAILING_WSP.sub(b"\r\n", body)
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def canonical_header(name: bytes, value: bytes) -> bytes:
    """Relaxed header canonicalization (RFC 6376 §3.4.2), without the trailing CRLF."""
    value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    value = value.strip(b" ")
    return name.strip().lower() + b":" + value


def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """([(name, raw value incl. folding)], body) of a CRLF message."""
    head, _, body = message.partition(b"\r\n\r\n")
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif line:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields, body


def _selected_headers(fields: list[tuple[bytes, bytes]]) -> tuple[list[str], list[bytes]]:
    """Signed names (h=) and their canonical lines; each name picks instances bottom-up (§5.4.2)."""
    present: dict[str, list[tuple[bytes, bytes]]] = {}
    for field in fields:
        present.setdefault(field[0].strip().lower().decode("ascii", "replace"), []).append(field)
    names, lines = [], []
    for wanted, extra in (*((n, 1) for n in SIGNED_HEADERS), *((n, 0) for n in SIGNED_ONLY)):
        instances = present.get(wanted, [])
        for name, value in reversed(instances):
            names.append(wanted)
            lines.append(canonical_header(name, value) + b"\r\n")
        # One more name than instances: it contributes the null string, and a verifier that finds an
        # instance added later signs it in its place, so the signature breaks.
        names.extend([wanted] * extra)
    return names, lines


@functools.lru_cache(maxsize=64)
def _private_key(pem: str):
    """Parsed once per key and process: loading (and validating) an RSA-2048 PEM costs ~60 ms, which
    would otherwise dominate every signature (the engine signs thousands per second)."""
    return serialization.load_pem_private_key(pem.encode(), password=None)


def sign_message(message: bytes, key: SigningKey, *, timestamp: int | None = None) -> bytes:
    """The message with a DKIM-Signature header prepended."""
    fields, body = split_message(message)
    body_hash = base64.b64encode(hashlib.sha256(canonical_body(body)).digest()).decode()
    names, lines = _selected_headers(fields)
    tags = (
        f"v=1; a={key.algorithm}; c=relaxed/relaxed; d={key.domain}; s={key.selector}; "
        f"t={timestamp if timestamp is not None else int(time.time())}; h={':'.join(names)}; "
        f"bh={body_hash}; b="
    )
    signed = b"".join(lines) + canonical_header(b"DKIM-Signature", b" " + tags.encode())
    private = _private_key(key.private_key_pem)
    if key.algorithm == "ed25519-sha256":
        signature = private.sign(hashlib.sha256(signed).digest())  # RFC 8463 §3: sign the SHA-256 hash
    else:
        signature = private.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    header = f"DKIM-Signature: {tags}{base64.b64encode(signature).decode()}\r\n"
    return header.encode() + message
