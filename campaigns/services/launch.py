"""Launch: freeze the audience, apply the send gate and the frequency cap in batch, and put one
outbox row per allowed recipient (content rendered at send time from the approved version).

Every audience member who gets no message is recorded with the reason (CampaignExclusion) and the
counts per reason are kept on the campaign for the marketer. A launch that cannot happen (no BAA,
an unverified sender, an audience that became empty or started to use PHI after approval) sends
nothing, returns the campaign to "approved" and says why.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from consent.models import TRANSACTIONAL_PURPOSES
from contacts.models import Contact
from delivery.models import EncryptionPolicy, Message, SenderDomain, Stream
from delivery.outbox import OutboxRecipient, message_enqueue_many
from healthmail.actors import Actor
from healthmail.crypto import rowkeys
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Service, Tenant
from healthmail.tenants.services import tenant_can
from segmentation.models import Segment, SegmentSnapshotMember
from segmentation.services import segment_snapshot_take

from ..models import Campaign, CampaignExclusion, CampaignVariant
from . import scheduling
from .audience import audience_screen, exclusions_sentence
from .history import transition_record

Status = Campaign.Status
SYSTEM = Actor.system("campaigns.launch")
SOURCE_TYPE = "campaign"
CHUNK = 5_000


class LaunchRefused(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Recipient:
    contact_id: uuid.UUID
    address: str
    state: str


def stream_for(purpose: str) -> str:
    return Stream.TRANSACTIONAL if purpose in TRANSACTIONAL_PURPOSES else Stream.MARKETING


def _preflight(tenant: Tenant, campaign: Campaign) -> Segment:
    """The campaign's audience, once it may be launched."""
    service = (
        Service.TRANSACTIONAL_EMAIL if campaign.purpose in TRANSACTIONAL_PURPOSES else Service.MARKETING_EMAIL
    )
    permit = tenant_can(tenant, service)
    if not permit:
        raise LaunchRefused(permit.reason)
    if campaign.sender_domain is None or campaign.sender_domain.status != SenderDomain.Status.VERIFIED:
        raise LaunchRefused("The sender domain is not verified.")
    if campaign.template_version_id is None and not campaign.ab_enabled:
        raise LaunchRefused("The approved template version is missing; submit the campaign again.")
    segment = campaign.segment
    if segment is None:
        raise LaunchRefused("The campaign has no audience.")
    return segment


def _fail(campaign: Campaign, reason: str) -> Campaign:
    previous = campaign.status
    Campaign.objects.filter(pk=campaign.pk).update(status=Status.APPROVED, status_reason=reason[:300])
    campaign.status, campaign.status_reason = Status.APPROVED, reason[:300]
    transition_record(
        campaign=campaign, actor=SYSTEM, action="launch_failed", from_status=previous, comment=reason
    )
    return campaign


def _recipients(tenant: Tenant, contact_ids: list[uuid.UUID]) -> list[Recipient]:
    """Addresses decrypted as the system (a worker serves no person), in a stable order."""
    found: list[Recipient] = []
    for start in range(0, len(contact_ids), CHUNK):
        chunk = contact_ids[start : start + CHUNK]
        contacts = list(
            Contact.objects.for_tenant(tenant)
            .filter(pk__in=chunk)
            .only("id", "tenant_id", "email", "state", "object_key_id")
        )
        # Each contact's own key, loaded for the chunk in one query (not one per recipient).
        with rowkeys.key_scope():
            rowkeys.row_ciphers(tenant.pk, [contact.object_key_id for contact in contacts])
            for contact in contacts:
                if contact.email:
                    found.append(Recipient(contact.pk, contact.email, contact.state))
    found.sort(key=lambda r: str(r.contact_id))
    return found


def _record_exclusions(tenant: Tenant, campaign: Campaign, excluded: dict[uuid.UUID, str]) -> Counter:
    CampaignExclusion.objects.bulk_create(
        [
            CampaignExclusion(tenant=tenant, campaign=campaign, contact_id=cid, reason=reason)
            for cid, reason in excluded.items()
        ],
        batch_size=CHUNK,
        ignore_conflicts=True,
    )
    return Counter(excluded.values())


def enqueue(
    *,
    tenant: Tenant,
    campaign: Campaign,
    recipients: list[Recipient],
    variants: list[str],
    now: datetime.datetime,
) -> int:
    """One outbox row per recipient, grouped by send minute; variants assigned round-robin."""
    times = scheduling.send_times(
        states=[r.state for r in recipients],
        start=max(campaign.scheduled_for or now, now),
        now=now,
        tenant_timezone=tenant.timezone,
        send_date=campaign.send_date,
        send_time=campaign.send_time,
        recipient_mode=campaign.timezone_mode == Campaign.TimezoneMode.RECIPIENT,
        window_start=campaign.window_start,
        window_end=campaign.window_end,
        throttle_per_hour=campaign.throttle_per_hour,
    )
    groups: dict[datetime.datetime | None, list[OutboxRecipient]] = {}
    for index, (recipient, moment) in enumerate(zip(recipients, times, strict=True)):
        variant = variants[index % len(variants)] if variants else ""
        groups.setdefault(scheduling.minute(moment), []).append(
            OutboxRecipient(recipient.contact_id, recipient.address, variant=variant)
        )
    policy = campaign.encryption_policy
    if campaign.uses_phi and policy == EncryptionPolicy.OPPORTUNISTIC:
        raise LaunchRefused("PHI may not go out under opportunistic TLS.")
    for not_before, group in groups.items():
        message_enqueue_many(
            tenant=tenant,
            stream=stream_for(campaign.purpose),
            source_type=SOURCE_TYPE,
            source_id=str(campaign.pk),
            purpose=campaign.purpose,
            topic=campaign.topic.key if campaign.topic else "",
            uses_phi=campaign.uses_phi,
            encryption_policy=policy,
            sender_domain=campaign.sender_domain,
            recipients=group,
            not_before=not_before,
        )
    return len(recipients)


def _split(campaign: Campaign, recipients: list[Recipient], keys: list[str]) -> list[Recipient]:
    """The A/B test group: a random (but reproducible) share of the allowed recipients."""
    shuffled = list(recipients)
    random.Random(str(campaign.pk)).shuffle(shuffled)  # noqa: S311 - a fair split, not a secret
    size = scheduling.ab_test_size(len(shuffled), campaign.ab_test_percent, len(keys))
    return shuffled[:size]


def members(tenant: Tenant, campaign: Campaign) -> list[uuid.UUID]:
    return list(
        SegmentSnapshotMember.objects.for_tenant(tenant)
        .filter(snapshot_id=campaign.snapshot_id)
        .order_by("contact_id")
        .values_list("contact_id", flat=True)
    )


@transaction.atomic
def campaign_launch(*, tenant: Tenant, campaign_id, now: datetime.datetime | None = None) -> Campaign | None:
    """Run a scheduled campaign whose time has come. Safe to call twice: only a SCHEDULED campaign
    launches, under a row lock."""
    now = now or timezone.now()
    with tenant_context(tenant):
        campaign = (
            Campaign.objects.select_for_update(of=("self",))
            .select_related("segment", "topic", "sender_domain")
            .filter(pk=campaign_id, tenant=tenant)
            .first()
        )
        if campaign is None or campaign.status != Status.SCHEDULED:
            return None
        if campaign.scheduled_for and campaign.scheduled_for > now + datetime.timedelta(seconds=30):
            return None  # an early task (the campaign was rescheduled); the sweeper launches it on time
        try:
            segment = _preflight(tenant, campaign)
            snapshot = segment_snapshot_take(
                tenant=tenant,
                actor=SYSTEM,
                segment=segment,
                purpose=f"campaign {campaign.pk} launch",
                now=now,
            )
            campaign.snapshot = snapshot
            Campaign.objects.filter(pk=campaign.pk).update(snapshot=snapshot)
            if snapshot.uses_phi and not campaign.uses_phi:
                raise LaunchRefused(
                    "The audience now uses PHI, which the approval did not cover: submit the campaign again."
                )
            if not snapshot.member_count:
                raise LaunchRefused("The segment is empty now: nobody to send to. Nothing was sent.")
            return _launch(tenant, campaign, now)
        except LaunchRefused as refusal:
            return _fail(campaign, refusal.reason)


def _launch(tenant: Tenant, campaign: Campaign, now: datetime.datetime) -> Campaign:
    contact_ids = members(tenant, campaign)
    allowed, excluded = audience_screen(tenant, campaign, contact_ids, now)
    recipients = _recipients(tenant, allowed)
    missing = set(allowed) - {r.contact_id for r in recipients}
    excluded.update(dict.fromkeys(missing, "no_email_address"))
    if not recipients and not campaign.empty_send_confirmed:
        reasons = exclusions_sentence(Counter(excluded.values()))
        raise LaunchRefused(
            "Nothing was sent: nobody in the audience may receive this campaign now. Schedule it again "
            f"and confirm to launch it anyway. Not sent, by reason: {reasons}."
        )
    keys = list(
        CampaignVariant.objects.for_tenant(tenant).filter(campaign=campaign).values_list("key", flat=True)
    )
    if campaign.ab_enabled and keys:
        recipients = _split(campaign, recipients, keys)
    sent = enqueue(
        tenant=tenant,
        campaign=campaign,
        recipients=recipients,
        variants=keys if campaign.ab_enabled else [],
        now=now,
    )
    counts = _record_exclusions(tenant, campaign, excluded)
    previous = campaign.status
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Status.SENDING,
        launched_at=now,
        recipient_count=sent,
        excluded_counts=dict(counts),
        status_reason="",
    )
    campaign.status, campaign.launched_at, campaign.recipient_count = Status.SENDING, now, sent
    campaign.excluded_counts = dict(counts)
    transition_record(
        campaign=campaign,
        actor=SYSTEM,
        action="launch",
        from_status=previous,
        details={"members": len(contact_ids), "queued": sent, "excluded": dict(counts)},
    )
    if campaign.ab_enabled and keys and campaign.ab_test_percent < 100:
        from .. import tasks

        tasks.ab_decide_later(campaign=campaign, eta=now + datetime.timedelta(hours=campaign.ab_wait_hours))
    return campaign


def remainder_send(*, tenant: Tenant, campaign: Campaign, variant: str, now: datetime.datetime) -> Counter:
    """After an A/B test: everyone of the frozen audience who got no message yet, with the winner.
    The gate and the caps are applied again: consent may have changed while the test ran."""
    done = set(
        Message.objects.for_tenant(tenant)
        .filter(source_type=SOURCE_TYPE, source_id=str(campaign.pk))
        .values_list("contact_id", flat=True)
    )
    done |= set(
        CampaignExclusion.objects.for_tenant(tenant)
        .filter(campaign=campaign)
        .values_list("contact_id", flat=True)
    )
    rest = [cid for cid in members(tenant, campaign) if cid not in done]
    allowed, excluded = audience_screen(tenant, campaign, rest, now)
    recipients = _recipients(tenant, allowed)
    excluded.update(dict.fromkeys(set(allowed) - {r.contact_id for r in recipients}, "no_email_address"))
    sent = enqueue(tenant=tenant, campaign=campaign, recipients=recipients, variants=[variant], now=now)
    counts = _record_exclusions(tenant, campaign, excluded)
    total = Counter(campaign.excluded_counts) + counts
    Campaign.objects.filter(pk=campaign.pk).update(
        recipient_count=campaign.recipient_count + sent, excluded_counts=dict(total)
    )
    campaign.recipient_count += sent
    campaign.excluded_counts = dict(total)
    return Counter({"queued": sent, **counts})


def pending_states() -> Iterable[str]:
    return (Message.State.QUEUED, Message.State.SENDING, Message.State.DEFERRED)


@transaction.atomic
def campaign_complete_if_done(*, tenant: Tenant, campaign_id) -> bool:
    """A sending campaign is sent once no message waits and no A/B remainder is due."""
    with tenant_context(tenant):
        campaign = (
            Campaign.objects.select_for_update(of=("self",)).filter(pk=campaign_id, tenant=tenant).first()
        )
        if campaign is None or campaign.status != Status.SENDING:
            return False
        if campaign.ab_enabled and campaign.ab_test_percent < 100 and not campaign.ab_winner:
            return False
        waiting = Message.objects.for_tenant(tenant).filter(
            source_type=SOURCE_TYPE, source_id=str(campaign.pk), state__in=list(pending_states())
        )
        if waiting.exists():
            return False
        Campaign.objects.filter(pk=campaign.pk).update(status=Status.SENT, finished_at=timezone.now())
        campaign.status = Status.SENT
        transition_record(
            campaign=campaign, actor=Actor.system("campaigns"), action="complete", from_status=Status.SENDING
        )
        return True
