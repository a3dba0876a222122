"""Absolute patient links (signed tokens) and the RFC 8058 headers for the delivery engine."""

from __future__ import annotations

import functools
import uuid
from typing import Protocol

from django.conf import settings
from django.urls import reverse

from contacts.models import Contact

from .models import AuthorizationText, Topic, UnencryptedEmailWaiver
from .tokens import LinkKind, link_token

_SLOT = "TOKEN"


class LinkContact(Protocol):
    """What a link needs of a contact: its ids (a Contact, or the ids of one not loaded)."""

    @property
    def pk(self) -> uuid.UUID: ...

    @property
    def tenant_id(self) -> uuid.UUID: ...


@functools.lru_cache(maxsize=16)
def _around(name: str, base_url: str, urlconf: str) -> tuple[str, str]:
    """What comes before and after the token in the page's absolute URL: resolved once, not per link
    (the delivery engine makes one per marketing message). Tokens are URL-safe as they are."""
    before, _, after = reverse(name, args=[_SLOT], urlconf=urlconf).partition(_SLOT)
    return base_url.rstrip("/") + before, after


def _absolute(name: str, token: str) -> str:
    before, after = _around(name, settings.PUBLIC_BASE_URL, settings.ROOT_URLCONF)
    return before + token + after


def authorize_url(*, contact: Contact, text: AuthorizationText) -> str:
    token = link_token(
        LinkKind.AUTHORIZE, tenant_id=contact.tenant_id, contact_id=contact.pk, text_id=text.pk
    )
    return _absolute("consent_public:authorize", token)


def preferences_url(*, contact: LinkContact) -> str:
    token = link_token(LinkKind.PREFERENCES, tenant_id=contact.tenant_id, contact_id=contact.pk)
    return _absolute("consent_public:preferences", token)


def unsubscribe_url(*, contact: LinkContact, topic: Topic | None) -> str:
    token = link_token(
        LinkKind.UNSUBSCRIBE,
        tenant_id=contact.tenant_id,
        contact_id=contact.pk,
        topic_key=topic.key if topic else "",
    )
    return _absolute("consent_public:unsubscribe", token)


def waiver_undo_url(*, waiver: UnencryptedEmailWaiver) -> str:
    token = link_token(
        LinkKind.WAIVER_UNDO, tenant_id=waiver.tenant_id, contact_id=waiver.contact_id, text_id=waiver.pk
    )
    return _absolute("consent_public:waiver_undo", token)


def list_unsubscribe_headers(contact: LinkContact, topic: Topic | None) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe (RFC 2369 List-Unsubscribe + List-Unsubscribe-Post) for one
    marketing message. The URL carries ids only; the message's DKIM signature must cover both
    headers (RFC 8058 section 4), which the delivery engine's signer does."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(contact=contact, topic=topic)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
