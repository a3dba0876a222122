"""Absolute patient links (signed tokens) and the RFC 8058 headers for the delivery engine."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from contacts.models import Contact

from .models import AuthorizationText, Topic
from .tokens import LinkKind, link_token


def _absolute(path: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def authorize_url(*, contact: Contact, text: AuthorizationText) -> str:
    token = link_token(
        LinkKind.AUTHORIZE, tenant_id=contact.tenant_id, contact_id=contact.pk, text_id=text.pk
    )
    return _absolute(reverse("consent_public:authorize", args=[token]))


def preferences_url(*, contact: Contact) -> str:
    token = link_token(LinkKind.PREFERENCES, tenant_id=contact.tenant_id, contact_id=contact.pk)
    return _absolute(reverse("consent_public:preferences", args=[token]))


def unsubscribe_url(*, contact: Contact, topic: Topic | None) -> str:
    token = link_token(
        LinkKind.UNSUBSCRIBE,
        tenant_id=contact.tenant_id,
        contact_id=contact.pk,
        topic_key=topic.key if topic else "",
    )
    return _absolute(reverse("consent_public:unsubscribe", args=[token]))


def list_unsubscribe_headers(contact: Contact, topic: Topic | None) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe (RFC 2369 List-Unsubscribe + List-Unsubscribe-Post) for one
    marketing message. The URL carries ids only; the message's DKIM signature must cover both
    headers (RFC 8058 section 4), which the delivery engine's signer does."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(contact=contact, topic=topic)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
