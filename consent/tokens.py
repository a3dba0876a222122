"""Signed, expiring links for patients (no login): sign an authorization, manage preferences,
unsubscribe. The token carries ids only (tenant, contact, text version, topic key), never PHI, and
each kind has its own salt, so an unsubscribe token cannot open the preference center."""

from __future__ import annotations

import datetime
import secrets
import uuid
from dataclasses import dataclass

from django.core import signing

from healthmail.errors import ApplicationError


class LinkKind:
    AUTHORIZE = "authorize"
    PREFERENCES = "preferences"
    UNSUBSCRIBE = "unsubscribe"


# How long a link works. CAN-SPAM asks that an opt-out keep working at least 30 days after sending
# (15 U.S.C. 7704(a)(3)); unsubscribe links outlive that comfortably.
MAX_AGE = {
    LinkKind.AUTHORIZE: datetime.timedelta(days=30),
    LinkKind.PREFERENCES: datetime.timedelta(days=90),
    LinkKind.UNSUBSCRIBE: datetime.timedelta(days=365),
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


def _salt(kind: str) -> str:
    return f"healthmail.consent.{kind}"


def link_token(
    kind: str, *, tenant_id, contact_id, text_id=None, topic_key: str = "", nonce: str | None = None
) -> str:
    payload = {
        "t": str(tenant_id),
        "c": str(contact_id),
        "v": str(text_id) if text_id else "",
        "k": topic_key,
        "n": nonce or secrets.token_urlsafe(12),
    }
    return signing.dumps(payload, salt=_salt(kind), compress=True)


def _link(kind: str, payload: dict) -> Link:
    return Link(
        kind=kind,
        tenant_id=uuid.UUID(payload["t"]),
        contact_id=uuid.UUID(payload["c"]),
        text_id=uuid.UUID(payload["v"]) if payload.get("v") else None,
        topic_key=str(payload.get("k", "")),
        nonce=str(payload["n"]),
    )


def link_read(kind: str, token: str) -> Link:
    """The link's content, or LinkInvalid (forged, altered, another kind) / LinkExpired."""
    try:
        return _link(kind, signing.loads(token, salt=_salt(kind), max_age=MAX_AGE[kind]))
    except signing.SignatureExpired as error:
        try:  # genuine but old: the tenant is known, so the refusal can be audited under it
            tenant_id = _link(kind, signing.loads(token, salt=_salt(kind))).tenant_id
        except (signing.BadSignature, KeyError, ValueError, TypeError):
            tenant_id = None
        raise LinkExpired(
            "This link has expired. Please ask the organization that sent it for a new one.",
            code="link_expired",
            tenant_id=tenant_id,
        ) from error
    except (signing.BadSignature, KeyError, ValueError, TypeError) as error:
        raise LinkInvalid(
            "This link is not valid. It may have been copied incompletely; please use the link exactly "
            "as you received it.",
            code="link_invalid",
        ) from error
