"""Outbox messages for the portal, report, tracking and webhook tests (synthetic data only)."""

from __future__ import annotations

import uuid

from delivery.models import Message, Stream
from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many

PHI_SUBJECT = "Your HbA1c result: 9.7%"
PHI_BODY = "Dear Zebediah Quixotefield, your HbA1c is 9.7% (uncontrolled type 2 diabetes)."


def content(**overrides) -> RenderedContent:
    values = {"subject": PHI_SUBJECT, "html": f"<p>{PHI_BODY}</p>", "text": PHI_BODY, **overrides}
    return RenderedContent(**values)


def make_message(
    tenant,
    *,
    address: str | None = None,
    contact_id=None,
    stream: str = Stream.TRANSACTIONAL,
    source_type: str = "api",
    source_id: str = "",
    variant: str = "",
    with_content: bool = True,
) -> Message:
    address = address or f"patient.{uuid.uuid4().hex[:8]}@patients.example"
    [message] = message_enqueue_many(
        tenant=tenant,
        stream=stream,
        source_type=source_type,
        source_id=source_id,
        purpose="treatment" if stream == Stream.TRANSACTIONAL else "marketing",
        recipients=[OutboxRecipient(contact_id, address, variant=variant)],
        uses_phi=stream == Stream.TRANSACTIONAL,
        content=content() if with_content else None,
    )
    return message
