"""Signed, expiring links for patients (no login): sign an authorization, manage preferences,
unsubscribe. The token carries ids only (tenant, contact, text version, topic key), never PHI, and
each kind has its own key, so an unsubscribe token cannot open the preference center.

A token is an encrypted binary record (healthmail.crypto.opaque): issue time, the ids, a random nonce
and the topic key; opaque (whoever holds the link cannot read the contact's id from it), marked by a
leading "o.", about 150 characters, and cheap enough for one per marketing message. Links issued
before it are still read until they expire, because an unsubscribe link must keep working long after
the message was sent: sealed but readable tokens (healthmail.crypto.sealed, no '.') and
django.core.signing ones (recognisable by their ':').
"""

from __future__ import annotations

import datetime
import secrets
import struct
import time
import uuid
from dataclasses import dataclass

from django.core import signing

from healthmail.crypto.opaque import opaque_open, opaque_seal
from healthmail.crypto.sealed import unseal
from healthmail.errors import ApplicationError


class LinkKind:
    AUTHORIZE = "authorize"
    PREFERENCES = "preferences"
    UNSUBSCRIBE = "unsubscribe"
    WAIVER_UNDO = "waiver_undo"  # carries the waiver's id where the others carry a text version


# How long a link works. CAN-SPAM asks that an opt-out keep working at least 30 days after sending
# (15 U.S.C. 7704(a)(3)); unsubscribe links outlive that comfortably.
MAX_AGE = {
    LinkKind.AUTHORIZE: datetime.timedelta(days=30),
    LinkKind.PREFERENCES: datetime.timedelta(days=90),
    LinkKind.UNSUBSCRIBE: datetime.timedelta(days=365),
    # Taking protection back must stay possible long after the confirmation mail arrived.
    LinkKind.WAIVER_UNDO: datetime.timedelta(days=365),
}


class LinkInvalid(ApplicationError):
    status_code = 400
    title = "Link not valid"


class LinkExpired(ApplicationError):
    status_code = 403
    title = "Link expired"

    def __init__(self, message: str, *, tenant_id: uuid.UUID | None, **kwargs):
        super().__init__(message, **kwargs)
        self.tenant_id = tenant_id


@dataclass(frozen=True)
class Link:
    kind: str
    tenant_id: uuid.UUID
    contact_id: uuid.UUID
    text_id: uuid.UUID | None
    topic_key: str
    nonce: str


# issued (seconds since the epoch) | tenant | contact | text version (zeros: none) | nonce | topic key
_HEAD = struct.Struct(">I16s16s16s9s")
_NO_TEXT = bytes(16)
MAX_CHARS = 400  # topic keys are short slugs; anything longer is not ours
_OPAQUE = "o."  # never in a sealed token (URL-safe base64) nor a signed one


def _salt(kind: str) -> str:
    return f"healthmail.consent.{kind}"


def link_token(
    kind: str, *, tenant_id, contact_id, text_id=None, topic_key: str = "", nonce: bytes | None = None
) -> str:
    body = _HEAD.pack(
        int(time.time()),
        _uuid(tenant_id).bytes,
        _uuid(contact_id).bytes,
        _uuid(text_id).bytes if text_id else _NO_TEXT,
        nonce or secrets.token_bytes(9),
    )
    return _OPAQUE + opaque_seal(_salt(kind), body + topic_key.encode())


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _link(kind: str, payload: dict) -> Link:
    return Link(
        kind=kind,
        tenant_id=uuid.UUID(payload["t"]),
        contact_id=uuid.UUID(payload["c"]),
        text_id=uuid.UUID(payload["v"]) if payload.get("v") else None,
        topic_key=str(payload.get("k", "")),
        nonce=str(payload["n"]),
    )


def _invalid() -> LinkInvalid:
    return LinkInvalid(
        "This link is not valid. It may have been copied incompletely; please use the link exactly "
        "as you received it.",
        code="link_invalid",
    )


def _expired(tenant_id: uuid.UUID | None) -> LinkExpired:
    return LinkExpired(
        "This link has expired. Please ask the organization that sent it for a new one.",
        code="link_expired",
        tenant_id=tenant_id,
    )


def link_read(kind: str, token: str) -> Link:
    """The link's content, or LinkInvalid (forged, altered, another kind) / LinkExpired."""
    if ":" in token:
        return _legacy_read(kind, token)
    if token.startswith(_OPAQUE):
        body = opaque_open(_salt(kind), token.removeprefix(_OPAQUE), max_chars=MAX_CHARS)
    else:  # sealed before links became opaque
        body = unseal(_salt(kind), token, max_chars=MAX_CHARS)
    if body is None or len(body) < _HEAD.size:
        raise _invalid()
    issued, tenant, contact, text, nonce = _HEAD.unpack_from(body)
    try:
        topic_key = body[_HEAD.size :].decode()
    except UnicodeDecodeError:
        raise _invalid() from None
    tenant_id = uuid.UUID(bytes=tenant)
    if time.time() - issued > MAX_AGE[kind].total_seconds():
        raise _expired(tenant_id)
    return Link(
        kind=kind,
        tenant_id=tenant_id,
        contact_id=uuid.UUID(bytes=contact),
        text_id=uuid.UUID(bytes=text) if text != _NO_TEXT else None,
        topic_key=topic_key,
        nonce=nonce.hex(),
    )


def _legacy_read(kind: str, token: str) -> Link:
    """A link issued with django.core.signing (before sealed tokens)."""
    try:
        return _link(kind, signing.loads(token, salt=_salt(kind), max_age=MAX_AGE[kind]))
    except signing.SignatureExpired as error:
        try:  # genuine but old: the tenant is known, so the refusal can be audited under it
            tenant_id = _link(kind, signing.loads(token, salt=_salt(kind))).tenant_id
        except (signing.BadSignature, KeyError, ValueError, TypeError):
            tenant_id = None
        raise _expired(tenant_id) from error
    except (signing.BadSignature, KeyError, ValueError, TypeError) as error:
        raise _invalid() from error
