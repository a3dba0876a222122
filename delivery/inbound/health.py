"""Sender-domain health: policy and authentication rejections of our mail, RFC 6591 authentication
failure reports and DMARC aggregate reports. These describe the tenant's set-up (DKIM, SPF, DMARC,
reputation), never a patient: nothing here touches a contact or the suppression list.

A receiving domain that keeps refusing a stream for sender reasons gets a pause: after
DELIVERY_SENDER_REJECTION_THRESHOLD refusals within DELIVERY_SENDER_REJECTION_WINDOW_SECONDS, the
tenant's stream to that domain is held for DELIVERY_SENDER_PAUSE_SECONDS (the engine defers its
messages; nothing is lost), and the tenant's compliance officers are alerted (audit alert rule
`flagged_by_writer`: delivery.sender_rejected, delivery.stream_paused...).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from healthmail.actors import Actor
from healthmail.errors import Conflict, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Message, SenderDomain
from .classify import Verdict
from .dmarc import Aggregate
from .models import DomainPause, SenderFeedback

logger = logging.getLogger(__name__)
ACTOR = Actor.system("delivery.feedback")


@dataclass(frozen=True)
class PausePolicy:
    threshold: int
    window: timedelta
    duration: timedelta

    @classmethod
    def from_settings(cls) -> PausePolicy:
        return cls(
            threshold=max(1, int(getattr(settings, "DELIVERY_SENDER_REJECTION_THRESHOLD", 5))),
            window=timedelta(
                seconds=int(getattr(settings, "DELIVERY_SENDER_REJECTION_WINDOW_SECONDS", 3600))
            ),
            duration=timedelta(seconds=int(getattr(settings, "DELIVERY_SENDER_PAUSE_SECONDS", 3600))),
        )


def _alert(tenant: Tenant, action: str, summary: str, details: dict) -> None:
    """An audit event the alert rule turns into an in-app and e-mail alert (domains only, no PHI)."""
    audit.record(
        actor=ACTOR,
        action=action,
        tenant=tenant,
        details={**details, "alert": "warning", "summary": summary[:300]},
    )


def rejection_record(*, tenant: Tenant, message: Message, verdict: Verdict) -> DomainPause | None:
    """A receiving domain refused our mail for a sender-side reason: mark the sender domain's health,
    alert on the first refusal of a window, and pause the stream to that domain at the threshold."""
    policy = PausePolicy.from_settings()
    now = timezone.now()
    sender_domain = message.sender_domain if message.sender_domain_id else None
    domain = sender_domain.domain if sender_domain is not None else ""
    with tenant_context(tenant):
        SenderFeedback.objects.create(
            tenant=tenant,
            sender_domain=sender_domain,
            domain=domain,
            kind=SenderFeedback.Kind.REJECTION,
            cause=verdict.cause[:16],
            status=verdict.status[:16],
            stream=message.stream,
            receiving_domain=message.to_domain,
        )
        recent = SenderFeedback.objects.filter(
            tenant=tenant,
            kind=SenderFeedback.Kind.REJECTION,
            stream=message.stream,
            receiving_domain=message.to_domain,
            received_at__gte=now - policy.window,
        ).count()
        facts = {
            "sender_domain": domain,
            "receiving_domain": message.to_domain,
            "stream": message.stream,
            "cause": verdict.cause,
            "status": verdict.status,
        }
        if recent == 1:
            _alert(
                tenant,
                "delivery.sender_rejected",
                f"{message.to_domain} refused {message.stream} mail from {domain or 'the platform'} "
                f"for the sender's {verdict.cause or 'policy'} ({verdict.status}); "
                "patients are not suppressed",
                facts,
            )
        if recent < policy.threshold or domain_paused_until(
            tenant=tenant, stream=message.stream, domain=message.to_domain
        ):
            return None
        pause = _pause(tenant, message.stream, message.to_domain, now + policy.duration, verdict)
        _alert(
            tenant,
            "delivery.stream_paused",
            f"{message.stream} mail to {message.to_domain} paused until "
            f"{pause.paused_until:%Y-%m-%d %H:%M} UTC "
            f"after {recent} refusals for the sender's {verdict.cause or 'policy'} ({verdict.status})",
            {**facts, "refusals": recent},
        )
        logger.warning("delivery: stream paused", extra={"stream": message.stream, "refusals": recent})
        return pause


def _pause(tenant: Tenant, stream: str, domain: str, until: datetime, verdict: Verdict) -> DomainPause:
    reason = f"{verdict.cause or 'policy'} refusals ({verdict.status})"
    try:
        with transaction.atomic():
            pause, _ = DomainPause.objects.update_or_create(
                tenant=tenant,
                stream=stream,
                receiving_domain=domain,
                defaults={"paused_until": until, "reason": reason},
            )
    except IntegrityError:  # a concurrent report created it first: extend that one
        pause = DomainPause.objects.get(tenant=tenant, stream=stream, receiving_domain=domain)
        pause.paused_until, pause.reason = until, reason
        pause.save(update_fields=["paused_until", "reason", "updated_at"])
    return pause


def domain_paused_until(*, tenant, stream: str, domain: str) -> datetime | None:
    with tenant_context(tenant):
        return (
            DomainPause.objects.filter(
                tenant=tenant, stream=stream, receiving_domain=domain, paused_until__gt=timezone.now()
            )
            .values_list("paused_until", flat=True)
            .first()
        )


def paused_domains(*, tenant_id, stream: str, domains: set[str]) -> dict[str, datetime]:
    """The receiving domains of a claimed batch that are paused for this stream, with their end."""
    if not domains:
        return {}
    with tenant_context(tenant_id):
        return dict(
            DomainPause.objects.filter(
                tenant_id=tenant_id,
                stream=stream,
                receiving_domain__in=sorted(domains),
                paused_until__gt=timezone.now(),
            ).values_list("receiving_domain", "paused_until")
        )


def domain_pause_lift(*, tenant: Tenant, actor: Actor, pause: DomainPause) -> DomainPause:
    """End a pause now (the tenant fixed its DKIM/SPF/DMARC set-up): held messages go out at once."""
    if pause.tenant_id != tenant.pk:
        raise NotFound("No such pause.", code="pause_not_found")
    with tenant_context(tenant):
        now = timezone.now()
        lifted = DomainPause.objects.filter(pk=pause.pk, tenant=tenant, paused_until__gt=now).update(
            paused_until=now
        )
        if lifted != 1:
            raise Conflict("This pause has already ended.", code="pause_ended")
        Message.objects.filter(
            tenant=tenant,
            stream=pause.stream,
            to_domain=pause.receiving_domain,
            state=Message.State.DEFERRED,
            not_before__gt=now,
        ).update(not_before=now)
        audit.record(
            actor=actor,
            action="delivery.stream_pause_lifted",
            target=pause,
            tenant=tenant,
            details={"stream": pause.stream, "receiving_domain": pause.receiving_domain},
        )
        pause.refresh_from_db()
    return pause


def domain_pause_get(*, tenant: Tenant, pause_id) -> DomainPause:
    with tenant_context(tenant):
        pause = DomainPause.objects.filter(tenant=tenant, pk=pause_id).first()
    if pause is None:
        raise NotFound("No such pause.", code="pause_not_found")
    return pause


def _sender_domain(tenant: Tenant, domain: str) -> SenderDomain | None:
    with tenant_context(tenant):
        return SenderDomain.objects.filter(tenant=tenant, domain=domain.lower()).first()


def auth_failure_record(
    *, tenant: Tenant, domain: str, auth_failure: str, message: Message | None
) -> SenderFeedback:
    """An RFC 6591 report: a receiver found our DKIM, SPF or DMARC failing on one message."""
    sender_domain = _sender_domain(tenant, domain) if domain else None
    if sender_domain is None and message is not None and message.sender_domain_id:
        sender_domain = message.sender_domain
    with tenant_context(tenant):
        entry = SenderFeedback.objects.create(
            tenant=tenant,
            sender_domain=sender_domain,
            domain=(sender_domain.domain if sender_domain else domain)[:253],
            kind=SenderFeedback.Kind.AUTH_FAILURE,
            cause=(auth_failure or "dmarc")[:16],
            stream=message.stream if message is not None else "",
        )
        _alert(
            tenant,
            "delivery.auth_failure_report",
            f"A receiver reports {auth_failure or 'an authentication'} failure for mail from {entry.domain}",
            {"sender_domain": entry.domain, "cause": entry.cause},
        )
    return entry


def aggregate_record(*, tenant: Tenant, aggregate: Aggregate) -> SenderFeedback | None:
    """A DMARC aggregate report; the same report received twice is kept once (None the second time)."""
    sender_domain = _sender_domain(tenant, aggregate.domain)
    with tenant_context(tenant):
        try:
            with transaction.atomic():
                entry = SenderFeedback.objects.create(
                    tenant=tenant,
                    sender_domain=sender_domain,
                    domain=aggregate.domain,
                    kind=SenderFeedback.Kind.AGGREGATE,
                    reporter=aggregate.reporter,
                    report_id=aggregate.report_id,
                    messages=aggregate.messages,
                    failed=aggregate.messages - aggregate.passed,
                    period_begin=aggregate.begin,
                    period_end=aggregate.end,
                    details={
                        "dkim_failed": aggregate.dkim_failed,
                        "spf_failed": aggregate.spf_failed,
                        "sources": aggregate.sources,
                    },
                )
        except IntegrityError:
            return None
        if entry.failed:
            _alert(
                tenant,
                "delivery.dmarc_failures",
                f"{aggregate.reporter or 'A receiver'} reports {entry.failed} of {entry.messages} "
                "messages from "
                f"{aggregate.domain} failing DMARC",
                {"sender_domain": aggregate.domain, "failed": entry.failed, "messages": entry.messages},
            )
    return entry
