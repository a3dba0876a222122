"""Reads of the audit trail for compliance officers."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import QuerySet

from .models import AuditEvent, ChainVerification


@dataclass(frozen=True)
class EventFilter:
    actor: str = ""  # actor id (user id, API key prefix, system component)
    action: str = ""  # exact action or a prefix ending with "."
    target: str = ""  # object id, or "type:id"
    outcome: str = ""
    since: datetime.date | None = None
    until: datetime.date | None = None

    def as_details(self) -> dict:
        return {k: str(v) for k, v in self.__dict__.items() if v}


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
    if filters.since:
        events = events.filter(occurred_at__date__gte=filters.since)
    if filters.until:
        events = events.filter(occurred_at__date__lte=filters.until)
    return events.order_by("-id")


def latest_verification(*, tenant) -> ChainVerification | None:
    return ChainVerification.objects.filter(tenant=tenant).first()
