"""Engagement reported by the tenant's own systems (conversions, form submissions, page views), so
segments can target behaviour beyond email opens and clicks. Labels are short identifiers (a form or
page key), never free text: a URL or a form's content could carry PHI."""

from __future__ import annotations

import datetime
import re
import uuid

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from audit.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context

from ..models import EngagementEvent, Message


class EventRefused(ApplicationError):
    status_code = 422
    title = "Event refused"


REPORTABLE = (
    EngagementEvent.Kind.CONVERSION,
    EngagementEvent.Kind.FORM_SUBMISSION,
    EngagementEvent.Kind.PAGE_VIEW,
)
LABEL = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_AGE = datetime.timedelta(days=366)


@transaction.atomic
def engagement_report(
    *,
    tenant,
    actor: Actor,
    contact,
    kind: str,
    label: str = "",
    occurred_at: datetime.datetime | None = None,
    message_id: uuid.UUID | None = None,
) -> EngagementEvent:
    if kind not in REPORTABLE:
        raise EventRefused("kind must be conversion, form_submission or page_view.", code="kind")
    if label and not LABEL.fullmatch(label):
        raise EventRefused("label is a short key (a-z, 0-9, . _ -), not free text.", code="label")
    now = timezone.now()
    occurred_at = occurred_at or now
    if occurred_at > now + datetime.timedelta(minutes=5) or occurred_at < now - MAX_AGE:
        raise EventRefused(
            "occurred_at must lie within the last year and not in the future.", code="occurred_at"
        )
    with tenant_context(tenant):
        message = None
        if message_id is not None:
            message = Message.objects.filter(tenant=tenant, pk=message_id, contact=contact).first()
            if message is None:
                raise EventRefused("No message with that id was sent to this contact.", code="message")
        event = EngagementEvent.objects.create(
            tenant=tenant,
            contact=contact,
            kind=kind,
            label=label,
            occurred_at=occurred_at,
            message=message,
            source_type=message.source_type if message else "",
            source_id=message.source_id if message else "",
            variant=message.variant if message else "",
        )
        audit.record(
            actor=actor,
            action="engagement.report",
            target=event,
            tenant=tenant,
            details={"kind": kind, "contact": str(contact.pk)},
        )
    return event
