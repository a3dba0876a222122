"""Compact tracking tokens: kind, tenant id, message id and (for clicks) the recorded URL's id, with an
HMAC so nobody can forge a click to a URL we did not record. Ids only: no address, no contact id,
no PHI. The ids are random UUIDs, so the token tells an observer nothing about the person."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from healthmail.crypto.sealed import seal, unseal

OPEN, CLICK = b"o", b"c"
PURPOSE = "healthmail.tracking"


@dataclass(frozen=True)
class TrackingToken:
    kind: bytes
    tenant_id: uuid.UUID
    message_id: uuid.UUID
    url_id: int | None = None


def _body(token: TrackingToken) -> bytes:
    body = token.kind + token.tenant_id.bytes + token.message_id.bytes
    if token.kind == CLICK:
        body += int(token.url_id or 0).to_bytes(8, "big")
    return body


def token_make(token: TrackingToken) -> str:
    return seal(PURPOSE, _body(token))


def token_read(text: str) -> TrackingToken | None:
    """The token's ids, or None for anything forged, truncated or malformed."""
    body = unseal(PURPOSE, text, max_chars=120)
    if body is None or {OPEN: 33, CLICK: 41}.get(body[:1]) != len(body):
        return None
    kind = body[:1]
    url_id = int.from_bytes(body[33:41], "big") if kind == CLICK else None
    return TrackingToken(kind, uuid.UUID(bytes=body[1:17]), uuid.UUID(bytes=body[17:33]), url_id)
