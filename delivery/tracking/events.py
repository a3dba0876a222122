"""Events reported by the tenant's own systems.

Engagement (conversions, form submissions, page views) is stored here, so segments can target
behaviour beyond email opens and clicks. Labels are short identifiers (a form or page key), never
free text: a URL or a form's content could carry PHI.

Named events (`lab_result.ready`, `appointment.booked`, with an event id and data) belong to a higher
layer (journeys), which registers its handler here: delivery never imports it. The event id makes a
retry harmless; the data is checked here (short keys, scalar values) before any handler sees it.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from healthmail.actors import Actor
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
        for handler in _report_handlers:
            handler(event)
    return event


# Higher layers act on reported engagement (journeys: a form submission starts the journeys of that
# form), in the report's transaction; delivery never imports them.
ReportHandler = Callable[[EngagementEvent], None]
_report_handlers: list[ReportHandler] = []


def register_report_handler(handler: ReportHandler) -> None:
    if handler not in _report_handlers:
        _report_handlers.append(handler)


EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
MAX_DATA_KEYS = 50
MAX_DATA_VALUE = 2_000


@dataclass(frozen=True)
class NamedEvent:
    tenant: Any
    actor: Actor
    contact: Any
    type: str
    event_id: str
    data: dict[str, Any]
    occurred_at: datetime.datetime


@dataclass(frozen=True)
class NamedEventReceipt:
    event_id: str
    type: str
    duplicate: bool  # the event id was seen before: nothing happened this time


NamedEventHandler = Callable[[NamedEvent], NamedEventReceipt]
_named_handler: list[NamedEventHandler] = []


def register_event_type_handler(handler: NamedEventHandler) -> None:
    """The one consumer of named events (journeys); call from AppConfig.ready()."""
    _named_handler[:] = [handler]


def _check_data(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or len(data) > MAX_DATA_KEYS:
        raise EventRefused(f"data is an object of at most {MAX_DATA_KEYS} values.", code="data")
    for key, value in data.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise EventRefused("data keys are names like appointment_time.", code="data")
        if not isinstance(value, str | int | float | bool) or len(str(value)) > MAX_DATA_VALUE:
            raise EventRefused(f"The data value “{key}” must be text or a number.", code="data")
    return data


def named_event_report(
    *,
    tenant,
    actor: Actor,
    contact,
    event_type: str,
    event_id: str,
    data: Any = None,
    occurred_at: datetime.datetime | None = None,
) -> NamedEventReceipt:
    if not EVENT_TYPE.fullmatch(event_type or ""):
        raise EventRefused("type is a short name like lab_result.ready (a-z, 0-9, . _ -).", code="type")
    if not EVENT_ID.fullmatch(event_id or ""):
        raise EventRefused("id is your system's id of the event (letters, digits, . _ : -).", code="id")
    now = timezone.now()
    occurred_at = occurred_at or now
    if occurred_at > now + datetime.timedelta(minutes=5) or occurred_at < now - MAX_AGE:
        raise EventRefused(
            "occurred_at must lie within the last year and not in the future.", code="occurred_at"
        )
    if not _named_handler:
        raise EventRefused("Named events are not taken by this installation.", code="type")
    event = NamedEvent(tenant, actor, contact, event_type, event_id, _check_data(data or {}), occurred_at)
    return _named_handler[0](event)
