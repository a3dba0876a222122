"""Compact tracking tokens: kind, tenant id, message id and (for clicks) the recorded URL's id, with an
HMAC so nobody can forge a click to a URL we did not record. Ids only: no address, no contact id,
no PHI. The ids are random UUIDs, so the token tells an observer nothing about the person."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from dataclasses import dataclass

from django.conf import settings

OPEN, CLICK = b"o", b"c"
MAC_BYTES = 12


@dataclass(frozen=True)
class TrackingToken:
    kind: bytes
    tenant_id: uuid.UUID
    message_id: uuid.UUID
    url_id: int | None = None


def _key(secret: str) -> bytes:
    return hashlib.sha256(f"healthmail.tracking|{secret}".encode()).digest()


def _mac(secret: str, body: bytes) -> bytes:
    return hmac.new(_key(secret), body, hashlib.sha256).digest()[:MAC_BYTES]


def _body(token: TrackingToken) -> bytes:
    body = token.kind + token.tenant_id.bytes + token.message_id.bytes
    if token.kind == CLICK:
        body += int(token.url_id or 0).to_bytes(8, "big")
    return body


def token_make(token: TrackingToken) -> str:
    body = _body(token)
    return base64.urlsafe_b64encode(body + _mac(settings.SECRET_KEY, body)).decode().rstrip("=")


def token_read(text: str) -> TrackingToken | None:
    """The token's ids, or None for anything forged, truncated or malformed."""
    if len(text) > 120:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    kind = raw[:1]
    size = {OPEN: 33, CLICK: 41}.get(kind)
    if size is None or len(raw) != size + MAC_BYTES:
        return None
    body, mac = raw[:size], raw[size:]
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if not any(hmac.compare_digest(mac, _mac(secret, body)) for secret in secrets):
        return None
    url_id = int.from_bytes(body[33:41], "big") if kind == CLICK else None
    return TrackingToken(kind, uuid.UUID(bytes=body[1:17]), uuid.UUID(bytes=body[17:33]), url_id)
