"""Who a campaign would reach: the audience after the send gate and the frequency cap.

The launch uses `audience_screen` to decide; `campaign_audience_preview` runs the same screen on the
segment's current members without writing anything, so the marketer sees the count and the reasons
for exclusion before submitting and again before scheduling. Scheduling a campaign that would reach
nobody needs an explicit confirmation (workflow.campaign_schedule), and so does its launch.
"""

from __future__ import annotations

import datetime
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import cast

from django.db.models import Count
from django.utils import timezone

from consent.gate import may_send_batch, refusal_label
from delivery.models import Message
from healthmail.disclosure import policy_for
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from segmentation.models import Segment
from segmentation.services import segment_member_ids

from ..models import Campaign

SOURCE_TYPE = "campaign"
CHUNK = 5_000
FREQUENCY_CAP_REASON = "frequency_cap"
# Messages that never reach the person do not count against a frequency cap.
NOT_SENT = (Message.State.CANCELLED, Message.State.SUPPRESSED, Message.State.EXPIRED, Message.State.FAILED)
CAMPAIGN_LABELS = {FREQUENCY_CAP_REASON: "Reached the frequency cap"}


def count_display(count: int) -> str:
    """Every audience number of the pre-launch preview goes through here: small counts could single
    people out, so they are hidden under the disclosure policy's smallest group ("fewer than 11").
    Zero is shown: the warning that nobody would be reached discloses it anyway. (Launched campaigns'
    figures take the whole policy, noise included: campaigns.selectors.shown.)"""
    k = policy_for(None).k
    return "0" if count == 0 else (f"fewer than {k}" if count < k else str(count))


def exclusion_label(code: str) -> str:
    return CAMPAIGN_LABELS.get(code) or refusal_label(code)


@dataclass(frozen=True)
class Exclusion:
    code: str
    label: str
    count: int

    @property
    def display(self) -> str:
        return count_display(self.count)


def exclusions_from_counts(counts: dict[str, int]) -> list[Exclusion]:
    """Largest first, with their labels."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [Exclusion(code, exclusion_label(code), count) for code, count in ordered if count]


def exclusions_sentence(counts: dict[str, int]) -> str:
    """ "Never opted in to the topic: 12; Opted out of the topic: fewer than 11" (masked counts)."""
    return "; ".join(f"{e.label}: {e.display}" for e in exclusions_from_counts(counts)) or "nobody excluded"


@dataclass(frozen=True)
class AudiencePreview:
    members: int
    sendable: int
    exclusions: list[Exclusion]
    counted_at: datetime.datetime

    @property
    def sends_nothing(self) -> bool:
        return self.sendable == 0

    def sentence(self) -> str:
        return exclusions_sentence({e.code: e.count for e in self.exclusions})


def frequency_capped(
    *, tenant: Tenant, campaign: Campaign, contact_ids: list[uuid.UUID], now: datetime.datetime
) -> set[uuid.UUID]:
    """Contacts who already got `frequency_cap_count` campaign or journey messages in the window."""
    if not campaign.frequency_cap_count or not contact_ids:
        return set()
    since = now - datetime.timedelta(days=campaign.frequency_cap_days)
    capped: set[uuid.UUID] = set()
    for start in range(0, len(contact_ids), CHUNK):
        chunk = contact_ids[start : start + CHUNK]
        rows = (
            Message.objects.filter(
                tenant=tenant,
                contact_id__in=chunk,
                created_at__gte=since,
                source_type__in=("campaign", "journey"),
            )
            .exclude(source_type=SOURCE_TYPE, source_id=str(campaign.pk))
            .exclude(state__in=NOT_SENT)
            .values("contact_id")
            .annotate(sent=Count("id"))
            .filter(sent__gte=campaign.frequency_cap_count)
            .values_list("contact_id", flat=True)
        )
        capped.update(rows)
    return capped


def audience_screen(
    tenant: Tenant, campaign: Campaign, contact_ids: list[uuid.UUID], now: datetime.datetime
) -> tuple[list[uuid.UUID], dict[uuid.UUID, str]]:
    """(allowed, {excluded id: reason}) after the send gate and the frequency cap."""
    decisions = may_send_batch(
        tenant=tenant,
        contact_ids=contact_ids,
        purpose=campaign.purpose,
        uses_phi=campaign.uses_phi,
        topic=campaign.topic,
    )
    excluded = {cid: d.code for cid, d in decisions.items() if not d.allowed}
    allowed = [cid for cid in contact_ids if cid not in excluded]
    for cid in frequency_capped(tenant=tenant, campaign=campaign, contact_ids=allowed, now=now):
        excluded[cid] = FREQUENCY_CAP_REASON
    return [cid for cid in allowed if cid not in excluded], excluded


def campaign_audience_preview(
    *, tenant: Tenant, campaign: Campaign, now: datetime.datetime | None = None
) -> AudiencePreview | None:
    """What a launch now would do, without writing: the segment's current members through the gate
    and the frequency cap. None when the campaign has no audience yet."""
    if campaign.segment_id is None:
        return None
    now = now or timezone.now()
    with tenant_context(tenant):
        # Read inside the tenant context: row-level security hides the segment outside it.
        segment = cast(Segment, campaign.segment)  # segment_id is set
        contact_ids = segment_member_ids(tenant=tenant, definition=segment.definition, now=now)
        allowed, excluded = audience_screen(tenant, campaign, contact_ids, now)
    return AudiencePreview(
        members=len(contact_ids),
        sendable=len(allowed),
        exclusions=exclusions_from_counts(Counter(excluded.values())),
        counted_at=now,
    )
