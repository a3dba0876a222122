"""Reads for the consent pages: a contact's history timeline and the consent reports."""

from __future__ import annotations

import datetime
import uuid
import zoneinfo
from dataclasses import dataclass, field
from functools import partial

from django.db.models import Count
from django.utils import timezone

from contacts.models import Contact
from healthmail.disclosure import Disclosed, Viewer, disclose
from healthmail.tenants.models import Tenant

from . import authorization_rules as rules
from . import authorization_standing as standing
from .models import (
    Authorization,
    AuthorizationEvent,
    AuthorizationKind,
    ConsentEvent,
    ConsentState,
    PreferenceChange,
    Purpose,
    Source,
    Suppression,
    Topic,
    WaiverEvent,
)


def _disclosed(count: int, *, tenant: Tenant, viewer: Viewer, cell: str) -> Disclosed:
    """Every consent-report number goes through the disclosure policy. Topics can be health programs
    and authorizations cover uses of PHI, so the cells are sensitive for viewers without PHI access."""
    return disclose(count, tenant=tenant, viewer=viewer, query=f"consent-report#{cell}", sensitive=True)


def _shown(count: int, *, tenant: Tenant, viewer: Viewer, cell: str) -> str:
    return _disclosed(count, tenant=tenant, viewer=viewer, cell=cell).display


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
    for authorization_event in (
        AuthorizationEvent.objects.for_tenant(tenant)
        .filter(contact=contact)
        .select_related("authorization__text")
    ):
        text = authorization_event.authorization.text
        entries.append(
            TimelineEntry(
                authorization_event.occurred_at,
                "Authorization",
                f"{authorization_event.get_kind_display()}: {text.title}",
                _source(authorization_event.source),
                _actor(authorization_event.actor_type, authorization_event.actor_id),
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
    for waiver_event in WaiverEvent.objects.for_tenant(tenant).filter(contact=contact).select_related("text"):
        purposes = ", ".join(Purpose(p).label.lower() for p in waiver_event.purposes if p in Purpose.values)
        entries.append(
            TimelineEntry(
                waiver_event.occurred_at,
                "Unencrypted email",
                f"{waiver_event.get_kind_display()} ({purposes})",
                _source(waiver_event.source),
                _actor(waiver_event.actor_type, waiver_event.actor_id),
                str(waiver_event.text) if waiver_event.text else "",
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
    # Valid authorizations ending within 30, 31-60 and 61-90 days, per kind (aggregate).
    expiring_bands: list[dict] = field(default_factory=list)
    # Contacts by what the gate would answer for marketing with PHI now (aggregate).
    marketing_standing: list[dict] = field(default_factory=list)


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
        expiring_bands=authorization_expiry_bands(tenant=tenant, viewer=viewer),
        marketing_standing=authorization_standing_counts(tenant=tenant, viewer=viewer),
        topics=topic_rows,
        authorizations=authorization_rows,
        suppressions=suppression_rows,
        expiring_count=small_cell(expiring.count(), cell=f"expiring:{days}"),
        expiring=list(expiring.order_by("expires_at").only("id", "contact_id", "expires_at", "kind")[:200])
        if with_ids
        else [],
    )


def contact_authorization_standing(
    *, tenant: Tenant, contact: Contact, kind: str = "marketing"
) -> standing.Standing | None:
    """What the send gate would say about this contact's authorizations of `kind` now (None: one is
    valid). The same rule as the gate, without the opt-in and suppression rules around it."""
    now = timezone.now()
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    rows = list(
        Authorization.objects.for_tenant(tenant)
        .filter(contact=contact, kind=kind, channels__contains=["email"])
        .annotate(**standing.presence_annotations())
        .values_list(*standing.AUTHORIZATION_FIELDS)
    )
    return standing.authorization_standing(
        rows=rows,
        texts={},
        tenant_id=tenant.pk,
        now=now,
        today=timezone.localdate(now, timezone=zone),
        zone=zone,
    )


EXPIRY_BANDS = ((0, 30), (30, 60), (60, 90))


def authorization_expiry_bands(*, tenant: Tenant, viewer: Viewer, figures: bool = False) -> list[dict]:
    """Valid authorizations whose calendar end falls within 30, 31-60 and 61-90 days, per kind.
    Counts only (small cells hidden): who they are is on each contact's page. `figures`: the
    disclosed cells themselves (for a chart), not only their text."""
    shown = _disclosed if figures else _shown
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    today = timezone.localdate(timezone.now(), timezone=zone)
    valid = Authorization.objects.for_tenant(tenant).filter(status="valid", expires_on__isnull=False)
    rows = []
    for kind in (AuthorizationKind.MARKETING, AuthorizationKind.RESEARCH):
        counts = {}
        for start, end in EXPIRY_BANDS:
            counts[f"within_{end}"] = shown(
                valid.filter(
                    kind=kind,
                    expires_on__gt=today + datetime.timedelta(days=start)
                    if start
                    else today - datetime.timedelta(days=1),
                    expires_on__lte=today + datetime.timedelta(days=end),
                ).count(),
                tenant=tenant,
                viewer=viewer,
                cell=f"expiring:{kind}:{end}",
            )
        rows.append({"kind": AuthorizationKind(kind).label, **counts})
    return rows


def authorization_standing_counts(*, tenant: Tenant, viewer: Viewer, kind: str = "marketing") -> list[dict]:
    """How many contacts with an authorization of `kind` the gate would allow or refuse now, by the
    gate's code (the same rule: consent.authorization_standing)."""
    now = timezone.now()
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    today = timezone.localdate(now, timezone=zone)
    by_contact: dict = {}
    rows = (
        Authorization.objects.for_tenant(tenant)
        .filter(kind=kind, channels__contains=["email"])
        .annotate(**standing.presence_annotations())
        .values_list("contact_id", *standing.AUTHORIZATION_FIELDS)
    )
    for contact_id, *row in rows.iterator(chunk_size=5000):
        by_contact.setdefault(contact_id, []).append(tuple(row))
    texts: dict = {}
    counts: dict[str, int] = {}
    for contact_rows in by_contact.values():
        found = standing.authorization_standing(
            rows=contact_rows, texts=texts, tenant_id=tenant.pk, now=now, today=today, zone=zone
        )
        code = "authorization_valid" if found is None else found.code
        counts[code] = counts.get(code, 0) + 1
    return [
        {"code": code, "count": _shown(count, tenant=tenant, viewer=viewer, cell=f"standing:{kind}:{code}")}
        for code, count in sorted(counts.items())
    ]


def authorization_defects_now(
    *, tenant: Tenant, authorization_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[rules.Defect]]:
    """Every defect of each stored authorization today (an empty list: valid), by the validator the
    gate uses. Reads presence, never the encrypted signature or authority: callers that must not
    disclose them (a masked read) still learn whether the form stands."""
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    now = timezone.now()
    today = timezone.localdate(now, timezone=zone)
    rows = list(
        Authorization.objects.for_tenant(tenant)
        .filter(pk__in=authorization_ids)
        .annotate(**standing.presence_annotations())
        .values_list(*standing.AUTHORIZATION_FIELDS)
    )
    texts: dict = {}
    standing.texts_load(tenant_id=tenant.pk, text_ids={row[1] for row in rows}, cache=texts)
    found = {}
    for row in rows:
        defects = rules.authorization_defects(
            form=standing.stored_form(row, texts[row[1]], zone), today=today
        )
        expires_at = row[10]
        if not defects and expires_at is not None and expires_at <= now:
            defects = [rules.defect("expired")]  # an instant recorded before calendar dates were kept
        found[row[0]] = defects
    return found


def consent_events(
    *, tenant: Tenant, contact_id: uuid.UUID | None = None, event_id: int | None = None
) -> list[tuple[ConsentEvent, bool]]:
    """Consent events of one contact (or one event), oldest first, each with whether it is still the
    contact's current decision for its topic and channel."""
    events = ConsentEvent.objects.for_tenant(tenant).select_related("topic")
    if contact_id is not None:
        events = events.filter(contact_id=contact_id)
    if event_id is not None:
        events = events.filter(pk=event_id)
    found = list(events.order_by("occurred_at", "id"))
    current = set(
        ConsentState.objects.for_tenant(tenant)
        .filter(event_id__in=[event.pk for event in found])
        .values_list("event_id", flat=True)
    )
    return [(event, event.pk in current) for event in found]


def authorizations_find(
    *, tenant: Tenant, contact_id: uuid.UUID | None = None, authorization_id: uuid.UUID | None = None
) -> list[Authorization]:
    """Authorizations of one contact (or one authorization), oldest signature first, with their texts."""
    found = Authorization.objects.for_tenant(tenant).select_related("text")
    if contact_id is not None:
        found = found.filter(contact_id=contact_id)
    if authorization_id is not None:
        found = found.filter(pk=authorization_id)
    return list(found.order_by("signed_at", "id"))
