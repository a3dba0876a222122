"""Segment reads: lookups the validator needs, lists, where-used, and member pages."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.db.models import QuerySet

from consent.models import Topic
from healthmail.errors import NotFound
from healthmail.tenants.models import Tenant

from .dsl import Lookup
from .models import CountQuery, Segment


def segment_lookup(*, tenant: Tenant) -> Lookup:
    """Resolves topic keys and segment ids of this tenant only (foreign ids are simply unknown)."""

    def topic_id(key: str) -> uuid.UUID | None:
        return Topic.objects.for_tenant(tenant).filter(key=key).values_list("id", flat=True).first()

    def segment(segment_id: uuid.UUID) -> tuple[str, Any] | None:
        row = (
            Segment.objects.for_tenant(tenant).filter(pk=segment_id).values_list("name", "definition").first()
        )
        return None if row is None else (row[0], row[1])

    return Lookup(topic_id=topic_id, segment=segment)


def segment_get(*, tenant: Tenant, segment_id: uuid.UUID | str) -> Segment:
    try:
        segment_id = uuid.UUID(str(segment_id))
    except ValueError:
        raise NotFound("No such segment.") from None
    segment = Segment.objects.for_tenant(tenant).filter(pk=segment_id).select_related("owner").first()
    if segment is None:
        raise NotFound("No such segment.")
    return segment


def segment_list(*, tenant: Tenant) -> QuerySet[Segment]:
    return Segment.objects.for_tenant(tenant).select_related("owner").order_by("name")


def segment_where_used(*, tenant: Tenant, segment: Segment) -> list[dict[str, str]]:
    """Where a segment is used: other segments now; campaigns and journeys add theirs when they exist."""
    users = Segment.objects.for_tenant(tenant).filter(references__contains=[str(segment.pk)])
    return [{"kind": "segment", "id": str(s.pk), "name": s.name} for s in users.order_by("name")]


def segment_options(*, tenant: Tenant, exclude: uuid.UUID | None = None) -> list[dict[str, str]]:
    """Saved segments a builder may reference."""
    segments = Segment.objects.for_tenant(tenant).order_by("name").values_list("id", "name")
    return [{"value": str(pk), "label": name} for pk, name in segments if pk != exclude]


def topic_options(*, tenant: Tenant) -> list[dict[str, str]]:

    topics = Topic.objects.for_tenant(tenant).order_by("name").values_list("key", "name")
    return [{"value": key, "label": name} for key, name in topics]


def count_queries_recent(*, tenant: Tenant, actor: str, since: datetime.datetime) -> list[CountQuery]:
    """The actor's sensitive count queries in the window, newest first (the disclosure audit)."""
    rows = CountQuery.objects.for_tenant(tenant).filter(actor=actor[:80], asked_at__gte=since)
    return list(rows.order_by("-asked_at"))


def count_query_answered(*, tenant: Tenant, actor: str, query: str, since: datetime.datetime) -> bool:
    """Whether the actor was answered this sensitive query in the window (the disclosure audit)."""
    rows = CountQuery.objects.for_tenant(tenant).filter(actor=actor[:80], query=query, asked_at__gte=since)
    return rows.exists()
