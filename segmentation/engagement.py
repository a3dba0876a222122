"""Engagement events (opens, clicks, conversions) for segment rules. They are recorded by the
delivery app, which sits above segmentation: delivery registers where they live when it starts
(delivery/apps.py), so segmentation never imports it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class EngagementSource:
    # The events table: columns tenant_id, contact_id, kind, is_bot, occurred_at.
    table: str
    # facts(tenant=) -> {contact id: ((kind, occurred_at), ...)} of human (not bot) events.
    facts: Callable[..., dict[Any, tuple[tuple[str, Any], ...]]]


_sources: list[EngagementSource] = []


def engagement_source_register(source: EngagementSource) -> None:
    """Called once by the app that records engagement (delivery)."""
    _sources[:] = [source]


def engagement_source() -> EngagementSource:
    if not _sources:
        raise ImproperlyConfigured("No engagement source: the delivery app registers it when it starts.")
    return _sources[0]
