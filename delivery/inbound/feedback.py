"""Apply one classified verdict to one message: the single writer for bounces, whether they come
from our own SMTP transaction (delivery/engine/record.py) or arrive later as a report
(services.py). The table that chooses the verdict is classify.py; this module only carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from consent import suppressions
from consent.models import Suppression
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.crypto import blind
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import DeliveryReport, Message
from . import health
from .classify import Category, Verdict

ACTOR = Actor.system("delivery.feedback")
State = Message.State
# A late report can overturn a delivery (our MX accepted, a later hop refused); other final states stay.
_OVERTURNABLE = {
    State.QUEUED,
    State.SENDING,
    State.DEFERRED,
    State.DELIVERED_TLS,
    State.DELIVERED_PORTAL,
    State.DELIVERED_WAIVER,
    State.DELIVERED_UNVERIFIED,
}


@dataclass(frozen=True)
class Applied:
    report: DeliveryReport | None
    suppressed: bool = False


def soft_bounce_streak() -> int:
    """Soft bounces in a row (the newest finished messages to one address) that suppress it."""
    return max(1, int(getattr(settings, "DELIVERY_SOFT_BOUNCE_STREAK", 5)))


def _suppress(tenant: Tenant, message: Message, reason: str, note: str) -> None:
    contact = Contact.objects.filter(pk=message.contact_id).first() if message.contact_id else None
    suppressions.suppression_add(
        tenant=tenant,
        actor=ACTOR,
        reason=reason,
        contact=contact,
        email="" if contact is not None else message.to_address,
        note=note,
    )


def _streak_reached(message: Message) -> bool:
    """Were the last N finished messages to this address all soft bounces? A delivery without a
    later bounce report breaks the streak."""
    streak = soft_bounce_streak()
    # The address's messages may hold its index under either version while an index-key rotation
    # runs, as their index or their next index (healthmail/crypto/blind.py).
    wanted = blind.candidates(
        message.tenant_id, "email", message.to_address_index, message.to_address_index_next
    )
    by_address = Q(to_address_index__in=wanted)
    if blind.versions(message.tenant_id).dual_compare:  # the next column has no index: only then
        by_address |= Q(to_address_index_next__in=wanted)
    recent = list(
        Message.objects.filter(
            by_address,
            tenant_id=message.tenant_id,
            state__in=list(Message.FINAL_STATES),
        )
        .order_by("-created_at")
        .values_list("pk", flat=True)[:streak]
    )
    if len(recent) < streak:
        return False
    soft = set(
        DeliveryReport.objects.filter(
            message_id__in=recent, kind=DeliveryReport.Kind.SOFT_BOUNCE
        ).values_list("message_id", flat=True)
    )
    return soft.issuperset(recent)


def _set_state(message: Message, state: str, reason: str) -> bool:
    changed = Message.objects.filter(pk=message.pk, state__in=list(_OVERTURNABLE)).update(
        state=state, state_reason=reason[:300], finished_at=timezone.now()
    )
    if changed:
        message.state = state
    return bool(changed)


def _notify(message: Message, event: str) -> None:
    from ..webhooks.services import webhooks_notify

    webhooks_notify(message, event)


def feedback_apply(
    *, message: Message, verdict: Verdict, action: str = "", matched_by: str, update_state: bool = True
) -> Applied:
    """Record and act on what a bounce said about `message`'s recipient. `update_state` is False when
    the engine has already written the message's final state in the same round."""
    tenant = Tenant.objects.get(pk=message.tenant_id)
    code = verdict.status or action
    with tenant_context(tenant):
        if verdict.category == Category.NONE:
            kind = DeliveryReport.Kind.DELIVERED if action in ("delivered", "relayed", "expanded") else None
            if kind is None:
                return Applied(None)
            return Applied(_report(message, kind, action, verdict, matched_by))
        if verdict.category == Category.HARD:
            entry = _report(message, DeliveryReport.Kind.BOUNCE, action, verdict, matched_by)
            if update_state and _set_state(message, State.BOUNCED, f"Bounce: the recipient is gone ({code})"):
                _notify(message, "message.bounced")
            _suppress(
                tenant, message, Suppression.Reason.HARD_BOUNCE, f"hard bounce {code} message {message.pk}"
            )
            return Applied(entry, suppressed=True)
        if verdict.category == Category.SOFT:
            if action == "delayed":
                return Applied(_report(message, DeliveryReport.Kind.DELAYED, action, verdict, matched_by))
            entry = _report(message, DeliveryReport.Kind.SOFT_BOUNCE, action, verdict, matched_by)
            if update_state and _set_state(
                message, State.BOUNCED, f"Soft bounce ({code}): not suppressed unless it repeats"
            ):
                _notify(message, "message.bounced")
            if _streak_reached(message):
                note = f"{soft_bounce_streak()} soft bounces in a row, last {code} message {message.pk}"
                _suppress(tenant, message, Suppression.Reason.HARD_BOUNCE, note)
                return Applied(entry, suppressed=True)
            return Applied(entry)
        if verdict.category == Category.SENDER:
            entry = _report(message, DeliveryReport.Kind.SENDER_POLICY, action, verdict, matched_by)
            cause = verdict.cause or "policy"
            reason = f"Refused for the sender's {cause} ({code}); the recipient is not at fault"
            if update_state and _set_state(message, State.FAILED, reason):
                _notify(message, "message.failed")
            health.rejection_record(tenant=tenant, message=message, verdict=verdict)
            return Applied(entry)
    raise ValueError(f"feedback_apply does not handle {verdict.category!r} verdicts")


def complaint_apply(*, message: Message, feedback_type: str, matched_by: str) -> Applied:
    """A recipient called our mail spam: marketing to them ends (the gate still lets treatment,
    payment and operations notices through, consent/gate.py)."""
    tenant = Tenant.objects.get(pk=message.tenant_id)
    with tenant_context(tenant):
        entry = DeliveryReport.objects.create(
            tenant_id=message.tenant_id,
            message=message,
            kind=DeliveryReport.Kind.COMPLAINT,
            action=feedback_type[:16],
            matched_by=matched_by,
        )
        _suppress(
            tenant, message, Suppression.Reason.COMPLAINT, f"complaint ({feedback_type}) message {message.pk}"
        )
        _notify(message, "message.complained")
    return Applied(entry, suppressed=True)


def _report(message: Message, kind: str, action: str, verdict: Verdict, matched_by: str) -> DeliveryReport:
    return DeliveryReport.objects.create(
        tenant_id=message.tenant_id,
        message=message,
        kind=kind,
        action=action[:16],
        status=verdict.status[:16],
        matched_by=matched_by[:16],
    )
