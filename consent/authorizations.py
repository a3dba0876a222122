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
from typing import cast

from django.conf import settings as django_settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audit import services as audit
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import authorization_records as records
from . import state_rules
from .authorization_rules import Defect
from .models import (
    AUTHORIZATION_TEXT_ELEMENTS,
    MEDIA_TEXT_ELEMENTS,
    Authorization,
    AuthorizationEvent,
    AuthorizationKind,
    AuthorizationText,
    Channel,
    FormSource,
    Source,
)
from .patient_mail import patient_mail_send
from .services import Evidence, consent_settings_get
from .tokens import LinkKind, link_token

logger = logging.getLogger("healthmail.consent")

# An electronic signature on the signing page also needs the signer's intent, given now (E-SIGN Act,
# 15 U.S.C. 7006(5): a signature is a sound, symbol or process adopted with the intent to sign).
ESIGN_DEFECTS: dict[str, Defect] = {
    "missing_intent": Defect(
        "missing_intent",
        "15 U.S.C. 7006(5)",
        "The signer did not confirm that they intend to sign.",
    ),
    "signature_date_not_today": Defect(
        "signature_date_not_today",
        "15 U.S.C. 7006(5)",
        "The date next to an electronic signature must be today's date.",
    ),
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


def authorization_text_current(*, tenant: Tenant, kind: str) -> AuthorizationText | None:
    """The published version offered for signing (texts recorded from paper forms are not offered)."""
    with tenant_context(tenant):
        published = AuthorizationText.objects.for_tenant(tenant).filter(kind=kind, origin="published")
        return published.order_by("-version").first()


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
    with tenant_context(tenant):
        latest = AuthorizationText.objects.for_tenant(tenant).filter(kind=kind).order_by("-version").first()
        text = AuthorizationText.objects.create(
            tenant=tenant,
            kind=kind,
            version=(latest.version + 1) if latest else 1,
            title=title.strip(),
            expiry_days=elements.get("expiry_days") or None,
            remuneration_involved=bool(elements.get("remuneration_involved")),
            state_disclosures="\n\n".join(disclosures),
            created_by=actor.reference,
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
    """A patient signs on the signing page: (authorization, created). The same submission (the
    signing link's nonce) submitted twice returns the first authorization instead of a second one.
    Signed here and now, so the date next to the signature must be today's."""
    extra = []
    if not intent_confirmed:
        extra.append(ESIGN_DEFECTS["missing_intent"])
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(tenant.timezone))
    if signed_on is not None and abs((signed_on - today).days) > 1:
        extra.append(ESIGN_DEFECTS["signature_date_not_today"])
    return records.authorization_record(
        tenant=tenant,
        contact=contact,
        text=text,
        signature=records.Signature(
            signer_name=signer_name,
            signed_on=signed_on,
            by_representative=by_representative,
            representative_authority=representative_authority,
        ),
        circumstances=records.Circumstances(form_source=FormSource.ELECTRONIC),
        evidence=evidence,
        submission_key=submission_key,
        channels=channels,
        extra_defects=tuple(extra),
    )


REVOCATION_RECEIVED = ("mail", "in_person", "portal", "email", "fax", "ehr", "phone_then_writing")


@transaction.atomic
def authorization_revoke(
    *, tenant: Tenant, authorization: Authorization, evidence: Evidence, received_via: str = ""
) -> bool:
    """Revoke (164.508(b)(5)): in force from the moment the revocation was received (the evidence's
    time), False when it was no longer valid. Queued messages re-check the gate before sending, so
    nothing relying on it leaves after this commits."""
    if authorization.tenant_id != tenant.pk:
        raise NotFound("No such authorization.", code="not_found")
    if received_via and received_via not in REVOCATION_RECEIVED:
        raise ApplicationError("Unknown way of receiving the revocation.", code="received_via_invalid")
    fields = evidence.fields()
    if fields["occurred_at"] > timezone.now():
        raise ApplicationError("A revocation cannot be dated in the future.", code="revoked_on_invalid")
    with tenant_context(tenant):
        updated = Authorization.objects.filter(pk=authorization.pk, tenant=tenant, status="valid").update(
            status=Authorization.Status.REVOKED,
            revoked_at=fields["occurred_at"],
            revoked_via=fields["source"],
            revocation_received=received_via,
        )
        if updated != 1:
            return False
        _event(tenant, authorization, AuthorizationEvent.Kind.REVOKED, fields)
        audit.record(
            actor=evidence.actor,
            action="authorization.revoke",
            target=authorization,
            tenant=tenant,
            details={
                "contact": str(authorization.contact_id),
                "via": fields["source"],
                "received": received_via,
            },
        )
        authorization.refresh_from_db(fields=["status", "revoked_at", "revoked_via", "revocation_received"])
    return True


def _event(tenant: Tenant, authorization: Authorization, kind: str, fields: dict) -> None:
    AuthorizationEvent.objects.create(
        tenant=tenant, authorization=authorization, contact_id=authorization.contact_id, kind=kind, **fields
    )


@transaction.atomic
def authorization_end_event_record(
    *, tenant: Tenant, authorization: Authorization, occurred_on: datetime.date, evidence: Evidence
) -> bool:
    """The expiration event written on the form has occurred: the authorization ends that day
    (164.508(b)(2)(i)). False when it was no longer valid."""
    if authorization.tenant_id != tenant.pk:
        raise NotFound("No such authorization.", code="not_found")
    if not authorization.expiry_event:
        raise ApplicationError(
            "This authorization ends on a date, not with an event.", code="expiry_event_none"
        )
    if occurred_on > records.tenant_today(tenant):
        raise ApplicationError("The event cannot have occurred in the future.", code="occurred_on_invalid")
    fields = evidence.fields()
    with tenant_context(tenant):
        updated = Authorization.objects.filter(pk=authorization.pk, tenant=tenant, status="valid").update(
            status=Authorization.Status.EXPIRED,
            expiry_event_occurred_on=occurred_on,
            expired_at=records.day_end(tenant, occurred_on) - datetime.timedelta(days=1),
        )
        if updated != 1:
            return False
        _event(tenant, authorization, AuthorizationEvent.Kind.EVENT_OCCURRED, fields)
        audit.record(
            actor=evidence.actor,
            action="authorization.end_event",
            target=authorization,
            tenant=tenant,
            details={"contact": str(authorization.contact_id)},
        )
        authorization.refresh_from_db(fields=["status", "expiry_event_occurred_on", "expired_at"])
    return True


@transaction.atomic
def authorization_copy_delivered(*, tenant: Tenant, authorization: Authorization, evidence: Evidence) -> None:
    """The individual received a copy of the signed form (164.508(c)(4)): recorded each time."""
    if authorization.tenant_id != tenant.pk:
        raise NotFound("No such authorization.", code="not_found")
    with tenant_context(tenant):
        _event(tenant, authorization, AuthorizationEvent.Kind.COPY_DELIVERED, evidence.fields())
        audit.record(
            actor=evidence.actor,
            action="authorization.copy",
            target=authorization,
            tenant=tenant,
            details={"contact": str(authorization.contact_id)},
        )


@transaction.atomic
def authorization_mark_false(*, tenant: Tenant, authorization: Authorization, evidence: Evidence) -> bool:
    """Material information in the form is known to be false (164.508(b)(2)(v)): never valid again."""
    if authorization.tenant_id != tenant.pk:
        raise NotFound("No such authorization.", code="not_found")
    fields = evidence.fields()
    with tenant_context(tenant):
        updated = (
            Authorization.objects.filter(pk=authorization.pk, tenant=tenant, known_false=False)
            .exclude(status=Authorization.Status.INVALID)
            .update(known_false=True, status=Authorization.Status.INVALID)
        )
        if updated != 1:
            return False
        _event(tenant, authorization, AuthorizationEvent.Kind.MARKED_FALSE, fields)
        audit.record(
            actor=evidence.actor,
            action="authorization.mark_false",
            target=authorization,
            tenant=tenant,
            details={"contact": str(authorization.contact_id)},
        )
        authorization.refresh_from_db(fields=["status", "known_false"])
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
    authorization (compare-and-set on reminder_sent_at); mail is queued in the same transaction.
    A tenant that cannot email its patients yet (no verified sender domain) sends none: they stay
    due, and go out on the first run after the domain is verified."""
    now = now or timezone.now()
    settings = consent_settings_get(tenant=tenant)
    horizon = now + datetime.timedelta(days=settings.reminder_days_before_expiry)
    evidence = _system_evidence("consent.reminders")
    published = {
        kind: authorization_text_current(tenant=tenant, kind=kind) for kind in AuthorizationKind.values
    }
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
            try:
                with transaction.atomic():  # the reminder's mark and mail: both or neither
                    sent += _remind(tenant, authorization, published, evidence, now)
            except ApplicationError as error:
                logger.warning(
                    "authorization reminders not sent: %s", error.code, extra={"tenant": str(tenant.pk)}
                )
                break  # the same for every later one
    return sent


def _remind(tenant: Tenant, authorization: Authorization, published: dict, evidence, now) -> int:
    contact = authorization.contact
    if not Authorization.objects.filter(pk=authorization.pk, reminder_sent_at__isnull=True).update(
        reminder_sent_at=now
    ):
        return 0
    AuthorizationEvent.objects.create(
        tenant=tenant,
        authorization=authorization,
        contact=contact,
        kind="reminded",
        **evidence.fields(),
    )
    # Renewal is offered on the current published version (a form recorded from paper has
    # no version of its own to sign online).
    current = published.get(authorization.kind) or authorization.text
    token = link_token(LinkKind.AUTHORIZE, tenant_id=tenant.pk, contact_id=contact.pk, text_id=current.pk)
    link = django_settings.PUBLIC_BASE_URL.rstrip("/") + reverse("consent_public:authorize", args=[token])
    # From the tenant's verified sender domain through the delivery engine (consent.patient_mail), in
    # this transaction: the reminder is retried if the mail server is down, never sent twice.
    patient_mail_send(
        tenant=tenant,
        contact_id=contact.pk,
        address=contact.email,  # system work (a task): decrypted for delivery only
        subject=REMINDER_SUBJECT,
        # Reminders are for authorizations that expire (expires_at__gt in the query above).
        body=_reminder_body(tenant, cast(datetime.datetime, authorization.expires_at), link),
        kind="authorization_reminder",
    )
    audit.record(actor=evidence.actor, action="authorization.remind", target=authorization, tenant=tenant)
    return 1
