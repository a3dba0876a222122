"""Apply parsed bounces and complaints: find the message, record the report, update its state, add
the suppression (hard bounce or complaint), tell the tenant's webhooks. Logs carry kinds and counts,
never addresses or content."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit.actors import Actor
from consent import suppressions
from consent.models import Suppression
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import DeliveryReport, Message
from .parse import Report, parse_report

logger = logging.getLogger(__name__)
ACTOR = Actor.system("delivery.inbound")
# A late DSN can overturn a delivery (the MX accepted, a later hop bounced); other final states stay.
_BOUNCEABLE = {
    Message.State.QUEUED,
    Message.State.SENDING,
    Message.State.DEFERRED,
    Message.State.DELIVERED_TLS,
    Message.State.DELIVERED_PORTAL,
    Message.State.DELIVERED_WAIVER,
}


@dataclass(frozen=True)
class Outcome:
    reports: int
    matched: int


def _find(report: Report) -> tuple[Message | None, str]:
    """The message a report is about. Row-level security hides other tenants' rows, so each tenant is
    asked in its own context (a primary-key or unique-index probe each)."""
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        with tenant_context(tenant_id):
            if report.verp_ids:
                found = Message.objects.filter(pk__in=list(report.verp_ids)).first()
                if found is not None:
                    return found, "verp"
            if report.message_ids:
                found = Message.objects.filter(message_id__in=list(report.message_ids)).first()
                if found is not None:
                    return found, "message-id"
    return None, ""


def _suppress(message: Message, reason: str, note: str) -> None:
    tenant = Tenant.objects.get(pk=message.tenant_id)
    if message.contact_id is not None:
        from contacts.models import Contact

        contact = Contact.objects.filter(pk=message.contact_id).first()
        if contact is not None:
            suppressions.suppression_add(
                tenant=tenant, actor=ACTOR, reason=reason, contact=contact, note=note
            )
            return
    suppressions.suppression_add(
        tenant=tenant, actor=ACTOR, reason=reason, email=message.to_address, note=note
    )


def _notify(message: Message, event: str) -> None:
    from ..webhooks.services import webhooks_notify

    webhooks_notify(message, event)


@transaction.atomic
def report_apply(report: Report) -> DeliveryReport | None:
    message, matched_by = _find(report)
    if message is None:
        logger.info("inbound report not matched", extra={"kind": report.kind})
        return None
    with tenant_context(message.tenant_id):
        entry = DeliveryReport.objects.create(
            tenant_id=message.tenant_id,
            message=message,
            kind=report.kind,
            action=report.action,
            status=report.status,
            matched_by=matched_by,
        )
        note = f"{report.kind} {report.status or report.action} message {message.pk}".strip()[:200]
        if report.kind == DeliveryReport.Kind.BOUNCE:
            changed = Message.objects.filter(pk=message.pk, state__in=list(_BOUNCEABLE)).update(
                state=Message.State.BOUNCED,
                state_reason=f"Bounce report (DSN {report.status or report.action})"[:300],
                finished_at=timezone.now(),
            )
            _suppress(message, Suppression.Reason.HARD_BOUNCE, note)
            if changed:
                message.refresh_from_db(fields=["state"])
                _notify(message, "message.bounced")
        elif report.kind == DeliveryReport.Kind.COMPLAINT:
            _suppress(message, Suppression.Reason.COMPLAINT, note)
            _notify(message, "message.complained")
    logger.info("inbound report applied", extra={"kind": report.kind, "matched_by": matched_by})
    return entry


def inbound_process(raw: bytes, *, envelope_recipients: list[str] | None = None) -> Outcome:
    """Parse and apply one inbound message. Never raises for bad input."""
    reports = parse_report(raw, envelope_recipients=envelope_recipients)
    if not reports:
        logger.info("inbound message is not a report we read", extra={"size": len(raw or b"")})
        return Outcome(0, 0)
    matched = sum(1 for report in reports if report_apply(report) is not None)
    return Outcome(len(reports), matched)
