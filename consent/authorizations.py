"""HIPAA authorizations (45 CFR 164.508): versioned texts, signing, revocation, expiry, reminders.

An authorization is valid only with every core element of 164.508(c): the text carries the
descriptive elements (the database refuses a text without them), the signed instance carries the
signature, its date, the signer's intent and, when a personal representative signs, their
authority. It is always its own document (164.508(b)(3)): nothing here touches treatment consent.
"""

from __future__ import annotations

import datetime
import logging
import zoneinfo

from django.conf import settings as django_settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from audit import services as audit
from audit.actors import Actor
from contacts.models import Contact
from healthmail.errors import ApplicationError, NotFound
from healthmail.sysmail.services import system_mail_queue
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import state_rules
from .models import (
    AUTHORIZATION_TEXT_ELEMENTS,
    MEDIA_TEXT_ELEMENTS,
    Authorization,
    AuthorizationEvent,
    AuthorizationKind,
    AuthorizationText,
    Channel,
    Source,
)
from .services import Evidence, consent_settings_get, contact_rule
from .tokens import LinkKind, link_token

logger = logging.getLogger("healthmail.consent")

SIGNATURE_ELEMENTS: dict[str, str] = {
    "signer_name": "the signature (the signer's typed full name)",
    "signed_on": "the date of the signature",
    "intent_confirmed": "the signer's confirmation that they intend to sign",
    "representative_authority": "the personal representative's authority to sign for the patient",
}
REMUNERATION_ELEMENT = ("remuneration_statement", "a statement of the remuneration involved")


class AuthorizationIncomplete(ApplicationError):
    """An element required by 45 CFR 164.508(c) is missing; `code` names it (missing_<element>)."""


def authorization_text_missing(values: dict, kind: str) -> list[tuple[str, str]]:
    """The (element, description) pairs a text lacks, in the order of 164.508(c)."""
    required = dict(AUTHORIZATION_TEXT_ELEMENTS)
    if kind == AuthorizationKind.MEDIA:
        required.update(MEDIA_TEXT_ELEMENTS)
    missing = [(key, label) for key, label in required.items() if not str(values.get(key) or "").strip()]
    if values.get("remuneration_involved") and not str(values.get("remuneration_statement") or "").strip():
        missing.append(REMUNERATION_ELEMENT)
    return missing


def _refuse_missing(missing: list[tuple[str, str]]) -> None:
    if missing:
        key, label = missing[0]
        others = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise AuthorizationIncomplete(
            f"The authorization is missing {label}{others}; it cannot be recorded as valid.",
            code=f"missing_{key}",
            extra={"missing": [k for k, _ in missing]},
        )


def _text_values(text: AuthorizationText) -> dict:
    keys = [
        *AUTHORIZATION_TEXT_ELEMENTS,
        *MEDIA_TEXT_ELEMENTS,
        "remuneration_involved",
        "remuneration_statement",
    ]
    return {key: getattr(text, key) for key in keys}


def authorization_text_current(*, tenant: Tenant, kind: str) -> AuthorizationText | None:
    with tenant_context(tenant):
        return AuthorizationText.objects.for_tenant(tenant).filter(kind=kind).order_by("-version").first()


@transaction.atomic
def authorization_text_create(
    *, tenant: Tenant, actor: Actor, kind: str, title: str, elements: dict
) -> AuthorizationText:
    """Publish a new version. The state disclosures of every state the tenant operates in are
    appended, so the version records exactly what signers are shown."""
    if kind not in AuthorizationKind.values:
        raise ApplicationError("Unknown kind of authorization.", code="kind_invalid")
    if not title.strip():
        raise ApplicationError("Give the document a title.", code="title_required")
    _refuse_missing(authorization_text_missing(elements, kind))
    settings = consent_settings_get(tenant=tenant)
    disclosures = state_rules.combine(settings.operating_states).disclosures
    allowed = {*AUTHORIZATION_TEXT_ELEMENTS, *MEDIA_TEXT_ELEMENTS, "remuneration_statement"}
    fields = {key: str(value).strip() for key, value in elements.items() if key in allowed}
    current = authorization_text_current(tenant=tenant, kind=kind)
    with tenant_context(tenant):
        text = AuthorizationText.objects.create(
            tenant=tenant,
            kind=kind,
            version=(current.version + 1) if current else 1,
            title=title.strip(),
            expiry_days=elements.get("expiry_days") or None,
            remuneration_involved=bool(elements.get("remuneration_involved")),
            state_disclosures="\n\n".join(disclosures),
            created_by=f"{actor.kind}:{actor.id}"[:80],
            **fields,
        )
        audit.record(
            actor=actor,
            action="authorization_text.create",
            target=text,
            tenant=tenant,
            details={"kind": kind, "version": text.version},
        )
    return text


@transaction.atomic
def authorization_sign(
    *,
    tenant: Tenant,
    contact: Contact,
    text: AuthorizationText,
    signer_name: str,
    signed_on: datetime.date | None,
    intent_confirmed: bool,
    by_representative: bool,
    representative_authority: str,
    evidence: Evidence,
    submission_key: str,
    channels: tuple[str, ...] = (Channel.EMAIL,),
) -> tuple[Authorization, bool]:
    """Record a signed authorization; (authorization, created). The same submission (the signing
    link's nonce) submitted twice returns the first authorization instead of a second one."""
    if text.tenant_id != tenant.pk or contact.tenant_id != tenant.pk:
        raise NotFound("No such contact or document.", code="not_found")
    with tenant_context(tenant):
        existing = Authorization.objects.for_tenant(tenant).filter(submission_key=submission_key).first()
        if existing is not None:
            return existing, False
    missing = authorization_text_missing(_text_values(text), text.kind)
    values = {
        "signer_name": signer_name.strip(),
        "signed_on": signed_on,
        "intent_confirmed": intent_confirmed,
    }
    missing += [(key, SIGNATURE_ELEMENTS[key]) for key, value in values.items() if not value]
    if (by_representative or contact.is_minor) and not representative_authority.strip():
        missing.append(("representative_authority", SIGNATURE_ELEMENTS["representative_authority"]))
    _refuse_missing(missing)
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(tenant.timezone))
    if abs((signed_on - today).days) > 1:
        raise ApplicationError(
            "The date next to the signature must be today's date.", code="signed_on_invalid"
        )
    if set(channels) - set(Channel.values) or not channels:
        raise ApplicationError("Unknown channel.", code="channels_invalid")

    fields = evidence.fields()
    signed_at = fields["occurred_at"]
    rule = contact_rule(tenant=tenant, contact=contact)
    with tenant_context(tenant):
        authorization = Authorization(
            tenant=tenant,
            contact=contact,
            text=text,
            kind=text.kind,
            signer_name=signer_name.strip(),
            signed_on=signed_on,
            signed_at=signed_at,
            intent_confirmed=True,
            by_representative=bool(by_representative or contact.is_minor),
            representative_authority=representative_authority.strip() or None,
            # State waiting periods: the authorization exists at once but allows nothing before this.
            effective_from=signed_at + datetime.timedelta(days=rule.waiting_period_days),
            expires_at=signed_at + datetime.timedelta(days=text.expiry_days) if text.expiry_days else None,
            expiry_event="" if text.expiry_days else text.expiration[:300],
            channels=list(channels),
            source=fields["source"],
            ip_address=fields["ip_address"],
            user_agent=fields["user_agent"],
            submission_key=submission_key,
        )
        try:
            with transaction.atomic():
                authorization.save()
        except IntegrityError:
            # A concurrent double submission won the race: answer with its authorization.
            existing = Authorization.objects.for_tenant(tenant).filter(submission_key=submission_key).first()
            if existing is None:
                raise
            return existing, False
        AuthorizationEvent.objects.create(
            tenant=tenant, authorization=authorization, contact=contact, kind="signed", **fields
        )
        audit.record(
            actor=evidence.actor,
            action="authorization.sign",
            target=authorization,
            tenant=tenant,
            details={
                "contact": str(contact.pk),
                "text": str(text.pk),
                "version": text.version,
                "kind": text.kind,
                "state_rules": list(rule.codes),
                "by_representative": authorization.by_representative,
            },
        )
    return authorization, True


@transaction.atomic
def authorization_revoke(*, tenant: Tenant, authorization: Authorization, evidence: Evidence) -> bool:
    """Revoke at once (164.508(b)(5)); False when it was no longer valid. Queued messages re-check
    the gate before sending, so nothing relying on it leaves after this commits."""
    if authorization.tenant_id != tenant.pk:
        raise NotFound("No such authorization.", code="not_found")
    fields = evidence.fields()
    with tenant_context(tenant):
        updated = Authorization.objects.filter(pk=authorization.pk, tenant=tenant, status="valid").update(
            status=Authorization.Status.REVOKED,
            revoked_at=fields["occurred_at"],
            revoked_via=fields["source"],
        )
        if updated != 1:
            return False
        AuthorizationEvent.objects.create(
            tenant=tenant,
            authorization=authorization,
            contact_id=authorization.contact_id,
            kind="revoked",
            **fields,
        )
        audit.record(
            actor=evidence.actor,
            action="authorization.revoke",
            target=authorization,
            tenant=tenant,
            details={"contact": str(authorization.contact_id), "via": fields["source"]},
        )
        authorization.refresh_from_db(fields=["status", "revoked_at", "revoked_via"])  # never the PHI
    return True


def _system_evidence(component: str) -> Evidence:
    return Evidence(source=Source.SYSTEM, actor=Actor.system(component))


@transaction.atomic
def authorization_expire_due(*, tenant: Tenant, now: datetime.datetime | None = None) -> int:
    """Expiry ends an authorization: status flips (compare-and-set) and an expired event is written.
    The gate already refuses past expires_at; this makes the record say so."""
    now = now or timezone.now()
    evidence = _system_evidence("consent.expiry")
    expired = 0
    with tenant_context(tenant):
        due = list(
            Authorization.objects.for_tenant(tenant)
            .filter(status="valid", expires_at__lte=now)
            .values_list("pk", "contact_id", "expires_at")[:5000]
        )
        for pk, contact_id, expires_at in due:
            if not Authorization.objects.filter(pk=pk, status="valid").update(
                status="expired", expired_at=now
            ):
                continue
            AuthorizationEvent.objects.create(
                tenant=tenant,
                authorization_id=pk,
                contact_id=contact_id,
                kind="expired",
                **{**evidence.fields(), "occurred_at": expires_at},
            )
            audit.record(
                actor=evidence.actor,
                action="authorization.expire",
                target=("consent.authorization", pk),
                tenant=tenant,
            )
            expired += 1
    return expired


REMINDER_SUBJECT = "A permission you gave is ending soon"  # never PHI, never the organization's name


def _reminder_body(tenant: Tenant, expires_at: datetime.datetime, link: str) -> str:
    return (
        f"{tenant.name} asked us to let you know that a permission you signed ends on "
        f"{timezone.localtime(expires_at, timezone=timezone.get_default_timezone()):%B %d, %Y}.\n\n"
        f"If you would like to renew it, you can read and sign it again here:\n{link}\n\n"
        "If you do nothing, it simply ends. This does not affect your care.\n\n"
        f"{tenant.name}\n{tenant.postal_address}\n"
    )


@transaction.atomic
def authorization_reminders_send(*, tenant: Tenant, now: datetime.datetime | None = None) -> int:
    """Renewal reminders N days before expiry (ConsentSettings, default 30), once per
    authorization (compare-and-set on reminder_sent_at); mail is queued in the same transaction."""
    now = now or timezone.now()
    settings = consent_settings_get(tenant=tenant)
    horizon = now + datetime.timedelta(days=settings.reminder_days_before_expiry)
    evidence = _system_evidence("consent.reminders")
    sent = 0
    with tenant_context(tenant):
        due = (
            Authorization.objects.for_tenant(tenant)
            .filter(
                status="valid", reminder_sent_at__isnull=True, expires_at__gt=now, expires_at__lte=horizon
            )
            .select_related("contact", "text")[:2000]
        )
        for authorization in due:
            contact = authorization.contact
            if contact.deleted_at is not None or not contact.email_index:
                continue
            if not Authorization.objects.filter(pk=authorization.pk, reminder_sent_at__isnull=True).update(
                reminder_sent_at=now
            ):
                continue
            AuthorizationEvent.objects.create(
                tenant=tenant,
                authorization=authorization,
                contact=contact,
                kind="reminded",
                **evidence.fields(),
            )
            token = link_token(
                LinkKind.AUTHORIZE, tenant_id=tenant.pk, contact_id=contact.pk, text_id=authorization.text_id
            )
            link = django_settings.PUBLIC_BASE_URL.rstrip("/") + reverse(
                "consent_public:authorize", args=[token]
            )
            body = _reminder_body(tenant, authorization.expires_at, link)
            address = contact.email  # system work (a task): decrypted for delivery only
            # Into the system-mail outbox (address and body sealed with the tenant's key), in this
            # transaction: the reminder is retried if the mail server is down, never sent twice.
            system_mail_queue(
                tenant=tenant,
                topic="consent.authorization_reminder",
                subject=REMINDER_SUBJECT,
                body=body,
                addresses=[address],
                source_ids=[authorization.pk],
            )
            audit.record(
                actor=evidence.actor, action="authorization.remind", target=authorization, tenant=tenant
            )
            sent += 1
    return sent
