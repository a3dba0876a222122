"""Putting messages into the outbox: the one entry point for campaigns, journeys and the API.

    message_enqueue_many(tenant=..., stream=Stream.MARKETING, source_type="campaign", source_id=str(c.pk),
                         purpose="marketing", topic="newsletters", uses_phi=False,
                         encryption_policy=EncryptionPolicy.TLS_ELSE_PORTAL, sender_domain=domain,
                         recipients=[OutboxRecipient(contact_id, address, variant="A"), ...])

Rows are written in bulk inside the caller's transaction; workers are woken after it commits.
Content is either given now (sealed under a per-message key, e.g. an API message with inline
content) or left to the source's renderer at send time (campaign messages: the approved template
version and the contact's current data), registered with `register_renderer`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from django.db import transaction

from healthmail.bulk import insert_unnest
from healthmail.crypto import blind
from healthmail.crypto.objects import content_open, content_seal, object_key_create
from healthmail.tenants.context import tenant_context

from .models import EncryptionPolicy, Message, SenderDomain, Stream


@dataclass(frozen=True)
class OutboxRecipient:
    contact_id: uuid.UUID | None
    address: str
    variant: str = ""


@dataclass(frozen=True)
class RenderedContent:
    subject: str
    html: str
    text: str
    preheader: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # The From display name (a campaign's sender name, the tenant's branding); empty: the tenant's name.
    # Validated like every header value when the message is built.
    from_name: str = ""
    # The From address before the @ (a campaign's sender address); empty: the stream's (care@, news@).
    # The domain is always the tenant's verified sender domain.
    from_local_part: str = ""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RenderedContent:
        return cls(**json.loads(data))


Renderer = Callable[[Message], RenderedContent]
_renderers: dict[str, Renderer] = {}


def register_renderer(source_type: str, renderer: Renderer) -> None:
    """A source (campaigns, journeys) renders its messages at send time; call from AppConfig.ready()."""
    _renderers[source_type] = renderer


def _aad(message_id: uuid.UUID) -> bytes:
    return f"message-content|{message_id}".encode()


def message_content(message: Message) -> RenderedContent:
    """The message's content: stored (sealed) or rendered now by its source."""
    if message.content is not None:
        if message.content_key_id is None:
            raise ValueError("The content of this message was destroyed (retention).")
        plaintext = content_open(
            message.content_key_id, message.tenant_id, bytes(message.content), aad=_aad(message.pk)
        )
        return RenderedContent.from_bytes(plaintext)
    try:
        renderer = _renderers[message.source_type]
    except KeyError:
        raise ValueError(f"No renderer for messages from {message.source_type!r}.") from None
    return renderer(message)


def new_message_id(sender_domain: SenderDomain | None, fallback_domain: str = "healthmail.invalid") -> str:
    domain = sender_domain.domain if sender_domain is not None else fallback_domain
    return f"<{uuid.uuid4().hex}@{domain}>"


@transaction.atomic
def message_enqueue_many(
    *,
    tenant,
    stream: str,
    source_type: str,
    source_id: str,
    purpose: str,
    recipients: Sequence[OutboxRecipient],
    topic: str = "",
    uses_phi: bool = True,
    encryption_policy: str = EncryptionPolicy.TLS_ELSE_PORTAL,
    sender_domain: SenderDomain | None = None,
    content: RenderedContent | None = None,
    not_before=None,
    expires_at=None,
) -> list[Message]:
    if stream not in Stream.values:
        raise ValueError(f"Unknown stream {stream!r}.")
    if encryption_policy == EncryptionPolicy.OPPORTUNISTIC and uses_phi:
        raise ValueError("Opportunistic TLS is for non-PHI marketing only.")
    view = blind.versions(tenant)  # one view of an index-key rotation's stage (blind.blind_index_pair)
    with tenant_context(tenant):
        messages = []
        for recipient in recipients:
            address_index, address_index_next = blind.blind_index_pair(
                tenant, "email", recipient.address, state=view
            )
            message = Message(
                tenant_id=tenant.pk,
                stream=stream,
                source_type=source_type,
                source_id=source_id,
                variant=recipient.variant,
                contact_id=recipient.contact_id,
                to_address=recipient.address,
                to_address_index=address_index,
                to_address_index_next=address_index_next,
                to_domain=recipient.address.rpartition("@")[2].lower(),
                sender_domain=sender_domain,
                purpose=purpose,
                topic=topic,
                uses_phi=uses_phi,
                encryption_policy=encryption_policy,
                message_id=new_message_id(sender_domain),
                not_before=not_before,
                expires_at=expires_at,
            )
            if content is not None:
                key = object_key_create(tenant=tenant)
                message.content_key = key
                message.content = content_seal(key, content.to_bytes(), aad=_aad(message.pk))
            messages.append(message)
        insert_unnest(messages)  # bulk_create's 34,000-parameter statements cost more than the rows
    # Robust: the rows are committed, so a broker that cannot be reached must not turn an accepted
    # request into an error (the client would send it again); the sweeper wakes the work instead.
    transaction.on_commit(lambda: _wake(tenant.pk, stream), robust=True)
    return messages


def _wake(tenant_id: uuid.UUID, stream: str) -> None:
    """Tell a worker of the stream that work is due (the outbox, not the broker, holds the work)."""
    from . import tasks  # tasks imports this module

    tasks.wake(tenant_id=tenant_id, stream=stream)
