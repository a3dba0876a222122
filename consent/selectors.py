"""Reads for the consent pages: a contact's history timeline and the consent reports."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import partial

from django.db.models import Count
from django.utils import timezone

from contacts.models import Contact
from healthmail.disclosure import Viewer, disclose
from healthmail.tenants.models import Tenant

from .models import (
    Authorization,
    AuthorizationEvent,
    ConsentEvent,
    ConsentState,
    PreferenceChange,
    Purpose,
    Source,
    Suppression,
    Topic,
    WaiverEvent,
)


def _shown(count: int, *, tenant: Tenant, viewer: Viewer, cell: str) -> str:
    """Every consent-report number goes through the disclosure policy. Topics can be health programs
    and authorizations cover uses of PHI, so the cells are sensitive for viewers without PHI access."""
    return disclose(
        count, tenant=tenant, viewer=viewer, query=f"consent-report#{cell}", sensitive=True
    ).display


@dataclass(frozen=True)
class TimelineEntry:
    occurred_at: datetime.datetime
    category: str
    summary: str
    source: str
    actor: str
    text: str = ""


def _source(value: str) -> str:
    return Source(value).label if value in Source.values else value


def _actor(actor_type: str, actor_id: str) -> str:
    return {"recipient": "the patient", "system": "system"}.get(
        actor_type, f"{actor_type} {actor_id}".strip()
    )


def contact_timeline(*, tenant: Tenant, contact: Contact) -> list[TimelineEntry]:
    """Every consent, authorization, preference, waiver and suppression change, newest first.
    Evidence is summarized (source, actor, text version); network details stay in the record."""
    entries: list[TimelineEntry] = []
    for event in (
        ConsentEvent.objects.for_tenant(tenant).filter(contact=contact).select_related("topic", "text")
    ):
        entries.append(
            TimelineEntry(
                event.occurred_at,
                "Consent",
                f"{event.get_kind_display()}: {event.topic.name}",
                _source(event.source),
                _actor(event.actor_type, event.actor_id),
                str(event.text) if event.text else "",
            )
        )
    for event in (
        AuthorizationEvent.objects.for_tenant(tenant)
        .filter(contact=contact)
        .select_related("authorization__text")
    ):
        text = event.authorization.text
        entries.append(
            TimelineEntry(
                event.occurred_at,
                "Authorization",
                f"{event.get_kind_display()}: {text.title}",
                _source(event.source),
                _actor(event.actor_type, event.actor_id),
                f"version {text.version}",
            )
        )
    for change in PreferenceChange.objects.for_tenant(tenant).filter(contact=contact).select_related("text"):
        label = {"frequency": "Frequency", "paused_until": "Paused until"}.get(change.field, change.field)
        entries.append(
            TimelineEntry(
                change.occurred_at,
                "Preferences",
                f"{label}: {change.value or 'not paused'}",
                _source(change.source),
                _actor(change.actor_type, change.actor_id),
                str(change.text) if change.text else "",
            )
        )
    for event in WaiverEvent.objects.for_tenant(tenant).filter(contact=contact).select_related("text"):
        purposes = ", ".join(Purpose(p).label.lower() for p in event.purposes if p in Purpose.values)
        entries.append(
            TimelineEntry(
                event.occurred_at,
                "Unencrypted email",
                f"{event.get_kind_display()} ({purposes})",
                _source(event.source),
                _actor(event.actor_type, event.actor_id),
                str(event.text) if event.text else "",
            )
        )
    for entry in Suppression.objects.for_tenant(tenant).filter(contact=contact):
        entries.append(
            TimelineEntry(
                entry.created_at, "Suppression", f"Added: {entry.get_reason_display()}", "", entry.created_by
            )
        )
        if entry.removed_at:
            entries.append(
                TimelineEntry(
                    entry.removed_at,
                    "Suppression",
                    f"Removed: {entry.get_reason_display()} ({entry.removed_reason})",
                    "",
                    entry.removed_by,
                )
            )
    return sorted(entries, key=lambda e: e.occurred_at, reverse=True)


def contact_topic_states(*, tenant: Tenant, contact: Contact) -> list[tuple[Topic, str]]:
    states = dict(
        ConsentState.objects.for_tenant(tenant).filter(contact=contact).values_list("topic_id", "status")
    )
    return [(topic, states.get(topic.pk, "")) for topic in Topic.objects.for_tenant(tenant)]


@dataclass(frozen=True)
class ConsentReport:
    topics: list[dict]
    authorizations: list[dict]
    suppressions: list[dict]
    expiring_count: str
    expiring: list[Authorization]


def consent_report(
    *, tenant: Tenant, viewer: Viewer, days: int = 30, with_ids: bool = False
) -> ConsentReport:
    """Counts by topic and status, authorizations by kind and status, active suppressions by reason,
    and authorizations expiring within `days`, as `viewer` may see them (healthmail/disclosure.py)."""
    small_cell = partial(_shown, tenant=tenant, viewer=viewer)
    topics = {t.pk: t for t in Topic.objects.for_tenant(tenant)}
    by_topic: dict = {}
    for topic_id, status, count in (
        ConsentState.objects.for_tenant(tenant).values_list("topic_id", "status").annotate(n=Count("id"))
    ):
        by_topic.setdefault(topic_id, {})[status] = count
    topic_rows = [
        {
            "topic": topic,
            **{
                status: small_cell(
                    by_topic.get(topic.pk, {}).get(status, 0), cell=f"topic:{topic.pk}:{status}"
                )
                for status in ConsentEvent.Kind.values
            },
        }
        for topic in topics.values()
    ]
    authorization_rows = [
        {
            "kind": Authorization(kind=kind).get_kind_display(),
            "status": status,
            "count": small_cell(count, cell=f"authorization:{kind}:{status}"),
        }
        for kind, status, count in Authorization.objects.for_tenant(tenant)
        .values_list("kind", "status")
        .annotate(n=Count("id"))
        .order_by("kind", "status")
    ]
    suppression_rows = [
        {"reason": Suppression.Reason(reason).label, "count": small_cell(count, cell=f"suppression:{reason}")}
        for reason, count in Suppression.objects.for_tenant(tenant)
        .filter(removed_at__isnull=True)
        .values_list("reason")
        .annotate(n=Count("id"))
        .order_by("reason")
    ]
    now = timezone.now()
    expiring = Authorization.objects.for_tenant(tenant).filter(
        status="valid", expires_at__gt=now, expires_at__lte=now + datetime.timedelta(days=days)
    )
    return ConsentReport(
        topics=topic_rows,
        authorizations=authorization_rows,
        suppressions=suppression_rows,
        expiring_count=small_cell(expiring.count(), cell=f"expiring:{days}"),
        expiring=list(expiring.order_by("expires_at").only("id", "contact_id", "expires_at", "kind")[:200])
        if with_ids
        else [],
    )
