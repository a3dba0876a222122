"""Engagement reads: aggregates per source/variant/link, and the contact selector segmentation uses."""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.db.models import Count, Q

from ..models import EngagementEvent, TrackedUrl


def engagement_summary(*, tenant, source_type: str, source_id: str) -> dict:
    """Counts per variant (total and unique messages; bots apart) and clicks per link."""
    events = EngagementEvent.objects.for_tenant(tenant).filter(source_type=source_type, source_id=source_id)
    variants: dict[str, dict[str, int]] = defaultdict(
        lambda: {
            "opens": 0,
            "unique_opens": 0,
            "clicks": 0,
            "unique_clicks": 0,
            "conversions": 0,
            "bot_events": 0,
        }
    )
    rows = events.values("variant", "kind", "is_bot").annotate(
        total=Count("id"), unique=Count("message", distinct=True)
    )
    names = {"open": ("opens", "unique_opens"), "click": ("clicks", "unique_clicks")}
    for row in rows:
        bucket = variants[row["variant"]]
        if row["is_bot"]:
            bucket["bot_events"] += row["total"]
        elif row["kind"] == EngagementEvent.Kind.CONVERSION:
            bucket["conversions"] += row["total"]
        else:
            total_key, unique_key = names[row["kind"]]
            bucket[total_key] += row["total"]
            bucket[unique_key] += row["unique"]
    links = (
        events.filter(kind=EngagementEvent.Kind.CLICK, is_bot=False, link__isnull=False)
        .values("link")
        .annotate(clicks=Count("id"), unique=Count("message", distinct=True))
        .order_by("-clicks")
    )
    urls = dict(
        TrackedUrl.objects.for_tenant(tenant)
        .filter(pk__in=[r["link"] for r in links])
        .values_list("pk", "url")
    )
    return {
        "variants": dict(variants),
        "links": [
            {"url": urls.get(r["link"], ""), "clicks": r["clicks"], "unique": r["unique"]} for r in links
        ],
    }


def contacts_engaged(*, tenant, kind: str, since: datetime.datetime, min_count: int = 1) -> set:
    """Contacts with at least `min_count` human events of a kind since a moment (the segmentation rule)."""
    return set(
        EngagementEvent.objects.for_tenant(tenant)
        .filter(kind=kind, is_bot=False, occurred_at__gte=since, contact__isnull=False)
        .values("contact")
        .annotate(n=Count("id", filter=Q(is_bot=False)))
        .filter(n__gte=min_count)
        .values_list("contact", flat=True)
    )


def engagement_facts(*, tenant) -> dict:
    """{contact id: ((kind, occurred_at), ...)} of human events: what the segmentation evaluator reads."""
    facts: dict = defaultdict(list)
    rows = (
        EngagementEvent.objects.for_tenant(tenant)
        .filter(is_bot=False, contact__isnull=False)
        .values_list("contact", "kind", "occurred_at")
    )
    for contact_id, kind, occurred_at in rows:
        facts[contact_id].append((kind, occurred_at))
    return {contact_id: tuple(events) for contact_id, events in facts.items()}
