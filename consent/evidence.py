"""Evidence: how every consent change is proven, and the errors consent services raise."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.http import HttpRequest
from django.utils import timezone

from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.observability import client_ip

from .models import ConsentText, Source


class ConsentError(ApplicationError):
    pass


@dataclass(frozen=True)
class Evidence:
    """How a change is proven: source, time, network origin, the text shown, and who acted."""

    source: str
    actor: Actor
    occurred_at: datetime.datetime | None = None
    ip_address: str | None = None
    user_agent: str = ""
    text: ConsentText | None = None

    def fields(self) -> dict:
        if self.source not in Source.values:
            raise ConsentError(f"Unknown evidence source “{self.source}”.", code="source_invalid")
        return {
            "source": self.source,
            "occurred_at": self.occurred_at or timezone.now(),
            "ip_address": self.ip_address,
            "user_agent": (self.user_agent or "")[:400],
            "actor_type": self.actor.kind,
            "actor_id": (self.actor.id or "")[:64],
        }

    @classmethod
    def from_request(
        cls, request: HttpRequest, *, actor: Actor, source: str = Source.WEB_FORM, text=None
    ) -> Evidence:
        return cls(
            source=source,
            actor=actor,
            ip_address=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            text=text,
        )


def recipient_actor(contact: Contact | uuid.UUID) -> Actor:
    return Actor("recipient", str(getattr(contact, "pk", contact)))
