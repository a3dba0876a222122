"""Inbound mail to our return-path and report addresses: parse it (parse.py), classify it
(classify.py) and apply it (feedback.py, health.py). Logs carry kinds and counts, never addresses or
content."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.db import transaction

from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Message, SenderDomain
from . import health
from .classify import Category, classify_feedback, classify_status
from .feedback import complaint_apply, feedback_apply
from .parse import RecipientStatus, Report, parse_report

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    reports: int
    matched: int
    category: str = ""


def _find(report: Report) -> tuple[Message | None, str]:
    """The message a report is about. A current VERP address names the tenant, so one primary-key
    probe in that tenant's context answers. Legacy VERP addresses and reports that quote only our
    Message-ID are asked of each tenant in turn (row-level security hides the others' rows)."""
    verp = report.verp
    if verp is not None and verp.tenant_id is not None:
        with tenant_context(verp.tenant_id):
            found = Message.objects.filter(pk=verp.message_id).select_related("sender_domain").first()
        return (found, "verp") if found is not None else (None, "")
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        with tenant_context(tenant_id):
            if verp is not None:
                found = Message.objects.filter(pk=verp.message_id).select_related("sender_domain").first()
                if found is not None:
                    return found, "verp"
            if report.message_ids:
                found = (
                    Message.objects.filter(message_id__in=list(report.message_ids))
                    .select_related("sender_domain")
                    .first()
                )
                if found is not None:
                    return found, "message-id"
    return None, ""


def _our_recipient(report: Report, message: Message, matched_by: str) -> RecipientStatus | None:
    """The one recipient block about our message's recipient. A report naming several recipients acts
    only on ours; a single block that names another address (a forward, an alias) counts only when
    the VERP address tied the report to our message."""
    ours = (message.to_address or "").strip().lower()
    for recipient in report.recipients:
        if ours and ours in (recipient.address, recipient.original):
            return recipient
    if len(report.recipients) == 1 and matched_by == "verp":
        return report.recipients[0]
    return None


def _bounce(report: Report) -> Outcome:
    message, matched_by = _find(report)
    if message is None:
        logger.info("inbound report not matched", extra={"format": report.format})
        return Outcome(1, 0)
    recipient = _our_recipient(report, message, matched_by)
    if recipient is None:
        logger.info("inbound report names none of our recipients", extra={"format": report.format})
        return Outcome(1, 0)
    verdict = classify_status(
        recipient.status, recipient.diagnostic, action=recipient.action, permanent=recipient.permanent
    )
    if verdict.category == Category.NONE and recipient.action not in ("delivered", "relayed", "expanded"):
        return Outcome(1, 0)
    feedback_apply(message=message, verdict=verdict, action=recipient.action, matched_by=matched_by)
    logger.info("inbound report applied", extra={"category": str(verdict.category), "matched_by": matched_by})
    return Outcome(1, 1, str(verdict.category))


def _tenant_for_domain(domain: str) -> Tenant | None:
    """A report that names only a sender domain (DMARC sent to a shared address): the tenant with
    that domain verified."""
    for tenant in Tenant.objects.all():
        with tenant_context(tenant):
            if SenderDomain.objects.filter(
                tenant=tenant, domain=domain, status=SenderDomain.Status.VERIFIED
            ).exists():
                return tenant
    return None


def _tenant(tenant_id: uuid.UUID | None, domain: str) -> Tenant | None:
    if tenant_id is not None:
        return Tenant.objects.filter(pk=tenant_id).first()
    return _tenant_for_domain(domain) if domain else None


def _feedback_report(report: Report) -> Outcome:
    category = classify_feedback(report.feedback_type)
    if category == Category.NONE:
        return Outcome(1, 0, str(category))
    message, matched_by = _find(report)
    if category == Category.AUTH_REPORT:
        # RFC 6591: about our DKIM/SPF/DMARC set-up, never the recipient - even though it quotes them.
        tenant = (
            Tenant.objects.get(pk=message.tenant_id)
            if message
            else _tenant(report.dmarc_tenant, report.reported_domain)
        )
        if tenant is None:
            return Outcome(1, 0, str(category))
        health.auth_failure_record(
            tenant=tenant,
            domain=report.reported_domain,
            auth_failure=str(report.extra.get("auth_failure", "")),
            message=message,
        )
        return Outcome(1, 1, str(category))
    if message is None:
        return Outcome(1, 0, str(category))
    recipient = report.recipients[0].address if report.recipients else ""
    ours = (message.to_address or "").strip().lower()
    if recipient and "@" in recipient and recipient != ours and matched_by != "verp":
        return Outcome(1, 0, str(category))  # quotes our Message-ID but names someone else
    complaint_apply(message=message, feedback_type=report.feedback_type or "abuse", matched_by=matched_by)
    return Outcome(1, 1, str(category))


def _aggregate(report: Report) -> Outcome:
    assert report.aggregate is not None  # noqa: S101 - parse.py sets it for this format
    tenant = _tenant(report.dmarc_tenant, report.aggregate.domain)
    if tenant is None:
        return Outcome(1, 0, str(Category.AUTH_REPORT))
    entry = health.aggregate_record(tenant=tenant, aggregate=report.aggregate)
    return Outcome(1, 1 if entry is not None else 0, str(Category.AUTH_REPORT))


@transaction.atomic
def report_apply(report: Report) -> Outcome:
    if report.format in ("dsn", "plaintext"):
        return _bounce(report)
    if report.format in ("arf", "jmrp"):
        return _feedback_report(report)
    if report.format == "dmarc_aggregate":
        return _aggregate(report)
    return Outcome(0, 0, str(Category.NONE))  # auto-replies, vacation notices, ordinary mail


def inbound_process(raw: bytes, *, envelope_recipients: list[str] | None = None) -> Outcome:
    """Parse and apply one inbound message. Never raises for bad input."""
    report = parse_report(raw, envelope_recipients=envelope_recipients)
    outcome = report_apply(report)
    logger.info(
        "inbound message",
        extra={"format": report.format, "matched": outcome.matched, "size": len(raw or b"")},
    )
    return outcome
