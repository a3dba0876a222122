"""Reads of the audit trail for compliance officers."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from .models import AuditEvent, ChainVerification


@dataclass(frozen=True)
class EventFilter:
    actor: str = ""  # actor id (user id, API key prefix, system component)
    action: str = ""  # exact action or a prefix ending with "."
    target: str = ""  # object id, or "type:id"
    outcome: str = ""
    since: datetime.date | None = None
    until: datetime.date | None = None
    contact: uuid.UUID | None = None  # every event that concerns this contact (indexed contact_ids)
    # Events about any of these contacts or any of these objects (an evidence package's scope).
    concerning_contacts: tuple[uuid.UUID, ...] = ()
    concerning_targets: tuple[str, ...] = ()  # object ids
    through_id: int | None = None  # the newest event the officer was shown: later ones are not "these"

    def as_details(self) -> dict:
        return {
            k: [str(item) for item in v] if isinstance(v, tuple) else str(v)
            for k, v in self.__dict__.items()
            if v
        }


def event_search(*, tenant, filters: EventFilter) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(tenant=tenant)
    if filters.actor:
        events = events.filter(actor_id=filters.actor)
    if filters.action:
        if filters.action.endswith("."):
            events = events.filter(action__startswith=filters.action)
        else:
            events = events.filter(action=filters.action)
    if filters.target:
        target_type, _, target_id = filters.target.rpartition(":")
        events = events.filter(target_id=target_id)
        if target_type:
            events = events.filter(target_type=target_type)
    if filters.outcome:
        events = events.filter(outcome=filters.outcome)
    if filters.contact:
        events = events.filter(contact_ids__contains=[filters.contact])
    if filters.concerning_contacts or filters.concerning_targets:
        concerning = Q(contact_ids__overlap=list(filters.concerning_contacts))
        if filters.concerning_targets:
            concerning |= Q(target_id__in=list(filters.concerning_targets))
        events = events.filter(concerning)
    if filters.through_id:
        events = events.filter(id__lte=filters.through_id)
    if filters.since:
        events = events.filter(occurred_at__date__gte=filters.since)
    if filters.until:
        events = events.filter(occurred_at__date__lte=filters.until)
    return events.order_by("-id")


def latest_verification(*, tenant) -> ChainVerification | None:
    return ChainVerification.objects.filter(tenant=tenant).first()
