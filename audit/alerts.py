"""Rules over the audit stream. A periodic task reads each tenant's newly sealed events in chain
order, fires alerts, and tells the tenant's compliance officers in-app and by email (through the
system-mail outbox, so an alert is mailed even when the mail server was down when it fired). A broken
audit chain, found by the sealer or by verification, raises a critical alert too. Alerts carry
references only (rule, event ids, counts), never PHI."""

from __future__ import annotations

import datetime
import logging
import uuid
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from healthmail import labels
from healthmail.accounts.models import Membership, User
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.sysmail.services import system_mail_queue
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import services
from .models import Alert, AlertScan, AuditEvent

FAILED_SIGN_IN_LIMIT = 10
FAILED_SIGN_IN_WINDOW = datetime.timedelta(minutes=15)
MASS_EXPORT_ROWS = 500
WORKING_HOURS = (7, 19)  # local time, Monday to Friday
MAIL_TOPIC = "audit.alert"
CHAIN_BROKEN = "chain_broken"
INTEGRITY_DAMAGED = "integrity_damaged"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fired:
    rule: str
    severity: str
    summary: str
    event_ids: tuple[int, ...]


Rule = Callable[[Tenant, list[AuditEvent]], Iterable[Fired]]


def failed_sign_ins(tenant: Tenant, events: list[AuditEvent]) -> Iterable[Fired]:
    denied = [e for e in events if e.action.startswith("auth.") and e.outcome == AuditEvent.Outcome.DENIED]
    if not denied:
        return
    since = denied[-1].occurred_at - FAILED_SIGN_IN_WINDOW
    recent = AuditEvent.objects.filter(
        tenant=tenant, action__startswith="auth.", outcome=AuditEvent.Outcome.DENIED, occurred_at__gte=since
    ).values_list("id", flat=True)
    ids = list(recent)
    already = Alert.objects.filter(
        tenant=tenant, rule="failed_sign_ins", created_at__gte=timezone.now() - FAILED_SIGN_IN_WINDOW
    )
    if len(ids) >= FAILED_SIGN_IN_LIMIT and not already.exists():
        yield Fired(
            "failed_sign_ins",
            Alert.Severity.WARNING,
            f"{len(ids)} failed sign-in steps within 15 minutes",
            tuple(ids[:100]),
        )


def mass_export(tenant: Tenant, events: list[AuditEvent]) -> Iterable[Fired]:
    for event in events:
        rows = event.details.get("rows") or event.details.get("count") or 0
        if (event.action.endswith(".export") or event.action == "phi.read") and rows >= MASS_EXPORT_ROWS:
            yield Fired(
                "mass_export",
                Alert.Severity.WARNING,
                f"{rows} records read or exported at once ({labels.label('audit_action', event.action)})",
                (event.id,),
            )


def break_glass_use(tenant: Tenant, events: list[AuditEvent]) -> Iterable[Fired]:
    for event in events:
        if event.action == "break_glass.open":
            yield Fired(
                "break_glass",
                Alert.Severity.CRITICAL,
                f"Break-glass access opened to {event.target_type} {event.target_id}",
                (event.id,),
            )


def after_hours_access(tenant: Tenant, events: list[AuditEvent]) -> Iterable[Fired]:
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    for event in events:
        if event.action != "phi.read" or event.actor_type != "user":
            continue
        local = event.occurred_at.astimezone(zone)
        if local.weekday() >= 5 or not WORKING_HOURS[0] <= local.hour < WORKING_HOURS[1]:
            yield Fired(
                "after_hours",
                Alert.Severity.INFO,
                f"PHI read outside working hours ({local:%a %H:%M} local) by user {event.actor_id}",
                (event.id,),
            )


def api_key_new_network(tenant: Tenant, events: list[AuditEvent]) -> Iterable[Fired]:
    for event in events:
        if event.action == "api_key.use" and event.details.get("new_network") and event.outcome == "success":
            yield Fired(
                "api_key_new_network",
                Alert.Severity.WARNING,
                f"API key {event.actor_id} used from a new network address",
                (event.id,),
            )


def flagged_by_writer(tenant: Tenant, events: list[AuditEvent]) -> Iterable[Fired]:
    """Events whose writer asked for an alert (details: alert = severity, summary = text without PHI):
    higher apps raise alerts this way without the audit app knowing them, e.g. delivery's
    sender-health events (a receiver refusing the tenant's mail for DMARC)."""
    for event in events:
        severity = event.details.get("alert") if isinstance(event.details, dict) else None
        if severity in Alert.Severity.values:
            yield Fired(
                event.action.replace(".", "_")[:64],
                severity,
                str(event.details.get("summary") or labels.label("audit_action", event.action)),
                (event.id,),
            )


RULES: tuple[Rule, ...] = (
    flagged_by_writer,
    failed_sign_ins,
    mass_export,
    break_glass_use,
    after_hours_access,
    api_key_new_network,
)
SCAN_BATCH = 5000


def _people(tenant: Tenant, role: str) -> list:
    return list(
        User.objects.filter(
            is_active=True,
            pk__in=Membership.objects.filter(tenant=tenant, role=role, is_active=True).values("user_id"),
        )
    )


def _recipients(tenant: Tenant) -> list:
    """Every active compliance officer; a tenant without one falls back to its admins, so a
    critical alert always reaches someone who can act on it."""
    return _people(tenant, Role.COMPLIANCE_OFFICER) or _people(tenant, Role.TENANT_ADMIN)


def _queue_mail(tenant: Tenant, alerts: list[Alert]) -> None:
    """One mail per compliance officer naming every alert of the batch, queued in the transaction
    that creates the alerts: each officer's copy is retried on its own until delivered."""
    lines = "\n".join(f"- [{a.severity}] {a.summary}" for a in alerts)
    link = f"{settings.PUBLIC_BASE_URL.rstrip('/')}/audit/alerts/"
    critical = any(a.severity == Alert.Severity.CRITICAL for a in alerts)
    system_mail_queue(
        tenant=tenant,
        topic=MAIL_TOPIC,
        subject=f"HealthMail {'CRITICAL ' if critical else ''}security alerts for {tenant.name} "
        f"({len(alerts)})",
        body=f"{lines}\n\nReview them at {link}\n",
        users=_recipients(tenant),
        source_ids=[a.pk for a in alerts],
    )


def alerts_scan_tenant(tenant: Tenant) -> list[Alert]:
    with tenant_context(tenant), transaction.atomic():
        scan, _ = AlertScan.objects.select_for_update().get_or_create(tenant=tenant)
        events = list(
            AuditEvent.objects.filter(tenant=tenant, seq__gt=scan.last_seq).order_by("seq")[:SCAN_BATCH]
        )
        if not events:
            return []
        fired = [f for rule in RULES for f in rule(tenant, events)]
        alerts = [
            Alert.objects.create(
                tenant=tenant,
                rule=f.rule,
                severity=f.severity,
                summary=f.summary[:300],
                event_ids=list(f.event_ids),
            )
            for f in fired
        ]
        scan.last_seq = cast(int, events[-1].seq)  # seq__gt above: sealed rows, every one numbered
        scan.save(update_fields=["last_seq"])
        if alerts:
            _queue_mail(tenant, alerts)
        for alert in alerts:  # the rule and its severity only: a summary may name a person
            logger.warning(
                "audit: alert raised",
                extra={"alert": str(alert.pk), "rule": alert.rule, "severity": alert.severity},
            )
    return alerts


def alert_chain_broken(*, tenant_id: uuid.UUID | None, problem: str, found_by: str) -> Alert | None:
    """A critical alert for a broken audit chain, mailed to every compliance officer; raised once per
    distinct problem (the sealer and the hourly verification keep finding the same break)."""
    logger.critical("audit chain broken", extra={"chain": str(tenant_id or "platform"), "found_by": found_by})
    if tenant_id is None:
        return None  # the platform chain has no compliance officers: the CRITICAL log line is the alert
    return _critical_once(
        tenant_id=tenant_id,
        rule=CHAIN_BROKEN,
        summary=f"Audit chain broken: {problem}",
        action="audit.chain_broken",
        details={"found_by": found_by},
    )


def alert_integrity_damaged(
    *, tenant_id: uuid.UUID, record: str, problem: str, found_by: str
) -> Alert | None:
    """A critical alert naming a stored record that fails its integrity check (a ciphertext that does
    not decrypt, an index its row denies): once per record and problem, whoever finds it. `record`
    and `problem` are references only (table and id, what failed), never PHI."""
    logger.critical("damaged record", extra={"record": record, "found_by": found_by})
    return _critical_once(
        tenant_id=tenant_id,
        rule=INTEGRITY_DAMAGED,
        summary=f"Damaged record {record}: {problem}",
        action="crypto.integrity_damaged",
        details={"found_by": found_by, "record": record},
    )


def _critical_once(
    *, tenant_id: uuid.UUID, rule: str, summary: str, action: str, details: dict
) -> Alert | None:
    tenant = Tenant.objects.get(pk=tenant_id)
    summary = summary[:300]
    with tenant_context(tenant), transaction.atomic():
        AlertScan.objects.select_for_update().get_or_create(tenant=tenant)  # one raiser at a time
        if Alert.objects.filter(tenant=tenant, rule=rule, summary=summary).exists():
            return None
        alert = Alert.objects.create(
            tenant=tenant, rule=rule, severity=Alert.Severity.CRITICAL, summary=summary, event_ids=[]
        )
        services.record(
            actor=Actor.system("audit"),
            action=action,
            target=alert,
            tenant=tenant,
            outcome="failure",
            details=details,
        )
        _queue_mail(tenant, [alert])
    return alert


def alerts_scan() -> int:
    return sum(len(alerts_scan_tenant(tenant)) for tenant in Tenant.objects.all())


def alert_acknowledge(*, tenant: Tenant, alert: Alert, user) -> Alert:
    with tenant_context(tenant):
        updated = Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
            acknowledged_by=user, acknowledged_at=timezone.now()
        )
        if updated:
            services.record(
                actor=Actor.for_user(user),
                action="alert.acknowledge",
                target=alert,
                tenant=tenant,
                details={"rule": alert.rule},
            )
        alert.refresh_from_db()
    return alert
