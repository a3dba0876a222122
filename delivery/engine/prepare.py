"""Turning a claimed message into wire bytes for its path: the content (or the portal notice that
replaces it), the unsubscribe headers, the DKIM signature of the tenant's verified sender domain."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from consent.links import list_unsubscribe_headers, preferences_url, unsubscribe_url
from consent.models import TRANSACTIONAL_PURPOSES, Topic
from delivery import dkim
from delivery.models import Message
from delivery.outbox import RenderedContent, message_content
from delivery.portal.services import portal_notice_commercial
from delivery.sender_domains.services import SenderDomainUnverified, sender_domain_key
from delivery.smtp.message import Prepared, UnsafeMessage
from healthmail.crypto.errors import DecryptionError
from healthmail.errors import ApplicationError
from healthmail.tenants.models import Tenant

from . import decide, record
from .compose import compose, prepared
from .config import StreamIdentity
from .decide import Path
from .gate import GateResult, topics_for

if TYPE_CHECKING:  # send imports this module
    from .send import Dependencies

State = Message.State


@dataclass(frozen=True)
class ContactRef:
    """What an unsubscribe link needs of a contact: its ids."""

    pk: uuid.UUID
    tenant_id: uuid.UUID


@dataclass
class Work:
    message: Message
    path: Path
    gate: GateResult
    refusals: list[dict[str, str]] = field(default_factory=list)
    content: RenderedContent | None = None  # kept across rounds: rendered once

    @property
    def needs_verified(self) -> bool:
        return decide.needs_verified_tls(
            uses_phi=self.message.uses_phi, encryption_policy=self.message.encryption_policy
        )

    @functools.cached_property
    def address(self) -> str:
        address: str = self.message.to_address  # decrypted once, not on every use
        return address


class Preparer:
    def __init__(self, *, tenant: Tenant, identity: StreamIdentity, deps: Dependencies) -> None:
        self.tenant = tenant
        self.identity = identity
        self.deps = deps
        self._keys: dict[uuid.UUID, dkim.SigningKey | SenderDomainUnverified] = {}
        self._topics: dict[str, Topic | None] | None = None

    def _signing_key(self, message: Message) -> dkim.SigningKey:
        domain_id = message.sender_domain_id
        if domain_id is None:
            raise SenderDomainUnverified("Mail without a sender domain is refused.")
        if domain_id not in self._keys:  # the domain row is read once per batch, not joined per message
            try:
                sender_domain = message.sender_domain
                if sender_domain is None:  # the id is set: the foreign key keeps its row
                    raise SenderDomainUnverified("Mail without a sender domain is refused.")
                self._keys[domain_id] = sender_domain_key(  # the row just read, not read again by name
                    sender_domain=sender_domain, domain=sender_domain.domain
                )
            except SenderDomainUnverified as error:
                self._keys[domain_id] = error
        found = self._keys[domain_id]
        if isinstance(found, SenderDomainUnverified):
            raise found
        return found

    def _commercial(self, message: Message) -> tuple[ContactRef, Topic | None] | None:
        """(contact ids, topic) of commercial mail to a contact, which carries an opt-out; else None."""
        if message.purpose in TRANSACTIONAL_PURPOSES or message.contact_id is None:
            return None
        if self._topics is None:
            self._topics = {}
        if message.topic not in self._topics:
            self._topics.update(topics_for(tenant=self.tenant, messages=[message]))
        # Only ids go into the link: the row's ids are all it needs (no Contact is loaded).
        return ContactRef(pk=message.contact_id, tenant_id=message.tenant_id), self._topics.get(message.topic)

    def _unsubscribe(self, message: Message) -> dict[str, str] | None:
        commercial = self._commercial(message)
        return list_unsubscribe_headers(*commercial) if commercial else None

    def _content_for_path(self, item: Work) -> RenderedContent:
        if item.content is None:
            item.content = message_content(item.message)
        if item.path != Path.PORTAL:
            return item.content
        if self.deps.portal is None:
            raise PortalUnavailable("The secure portal is not available; the message waits for it.")
        notice = self.deps.portal(item.message, item.content)
        commercial = self._commercial(item.message)
        if commercial is None:
            return RenderedContent(subject=notice.subject, html=notice.html, text=notice.text)
        contact, topic = commercial
        sender = item.content.from_name or self.tenant.name
        notice = portal_notice_commercial(
            notice,
            tenant=self.tenant,
            subject=item.content.subject,
            sender_identity=sender,
            unsubscribe_url=unsubscribe_url(contact=contact, topic=topic),
            preferences_url=preferences_url(contact=contact),
        )
        return RenderedContent(
            subject=notice.subject, html=notice.html, text=notice.text, from_name=item.content.from_name
        )

    def prepare(self, item: Work, *, now: datetime) -> tuple[Prepared, None] | tuple[None, record.Settle]:
        """(wire-ready message, None) or (None, what becomes of the message instead)."""
        message = item.message
        try:
            key = self._signing_key(message)
            content = self._content_for_path(item)
            data = compose(
                message=message,
                address=item.address,
                content=content,
                identity=self.identity,
                signing_key=key,
                display_name=content.from_name or self.tenant.name,
                now=now,
                unsubscribe_headers=self._unsubscribe(message),
            )
            phi = item.needs_verified if item.path == Path.DIRECT else False
            return prepared(
                message=message,
                address=item.address,
                content=data,
                identity=self.identity,
                sender_domain=key.domain,
                phi=phi,
            ), None
        except PortalUnavailable as error:
            retry = decide.Retry(State.DEFERRED, now + self.deps.engine.retry.minimum, str(error))
            return None, record.Settle(message, retry.state, retry.reason, not_before=retry.not_before)
        except SenderDomainUnverified as error:
            return None, record.Settle(message, State.FAILED, error.message)
        except (ApplicationError, UnsafeMessage, ValueError, DecryptionError) as error:
            reason = getattr(error, "message", None) or str(error)
            return None, record.Settle(message, State.FAILED, f"not sendable: {reason}"[:300])


class PortalUnavailable(Exception):
    pass
