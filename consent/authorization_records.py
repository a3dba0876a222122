"""Recording a signed HIPAA authorization, from every path: the patient signing page, the API (an EHR
or CRM), the staff form and the CSV import. One service, one validation (authorization_rules), one
audit trail.

A form signed elsewhere may be recorded after the fact (a paper form signed last month): the
signature date is the date on the form, and the recorder and the evidence (the scanned form,
encrypted) are kept with it. A defective form is refused with every defect at once.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import zoneinfo
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import authorization_rules as rules
from .models import (
    AUTHORIZATION_TEXT_ELEMENTS,
    Authorization,
    AuthorizationAttachment,
    AuthorizationEvent,
    AuthorizationKind,
    AuthorizationText,
    Channel,
    FormSource,
    Initiator,
    Source,
)
from .services import Evidence, contact_rule

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
ATTACHMENT_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/tiff"})


class AuthorizationDefective(ApplicationError):
    """The signed form is not a valid authorization; extra["defects"] lists every defect."""

    status_code = 422
    title = "Authorization not valid"

    def __init__(self, defects: list[rules.Defect]):
        sentences = " ".join(f"{d.message} ({d.paragraph})" for d in defects)
        super().__init__(
            f"The authorization cannot be recorded: {sentences}",
            code="authorization_defective",
            extra={"defects": [d.as_dict() for d in defects]},
        )
        self.defects = defects


@dataclass(frozen=True)
class Signature:
    signer_name: str
    signed_on: datetime.date | None
    by_representative: bool = False
    representative_authority: str = ""


@dataclass(frozen=True)
class Circumstances:
    """What the form says beyond its text, and how it came to be signed."""

    initiated_by: str = Initiator.COVERED_ENTITY
    combined_with: frozenset[str] = field(default_factory=frozenset)
    conditioned_on: frozenset[str] = field(default_factory=frozenset)
    form_source: str = FormSource.ELECTRONIC
    expires_on: datetime.date | None = None  # the date written on the form (else the text decides)
    expiry_event: str = ""


@dataclass(frozen=True)
class Attachment:
    content: bytes
    content_type: str


def tenant_today(tenant: Tenant, now: datetime.datetime | None = None) -> datetime.date:
    return timezone.localdate(now or timezone.now(), timezone=zoneinfo.ZoneInfo(tenant.timezone))


def reported_day_instant(tenant: Tenant, day: datetime.date) -> datetime.datetime:
    """A day someone reports (a revocation received on it) as an instant: noon in the organization's
    time zone, never after now, so a revocation received today is in force at once."""
    instant = datetime.datetime.combine(day, datetime.time(12), tzinfo=zoneinfo.ZoneInfo(tenant.timezone))
    return min(instant, timezone.now())


def day_end(tenant: Tenant, day: datetime.date) -> datetime.datetime:
    """The instant a calendar expiration stops allowing anything: midnight after it, tenant time."""
    next_day = day + datetime.timedelta(days=1)
    return datetime.datetime.combine(next_day, datetime.time(0), tzinfo=zoneinfo.ZoneInfo(tenant.timezone))


def _expiration(text: AuthorizationText, signature: Signature, given: Circumstances) -> tuple:
    """(expires_on, expiry_event): what the form says, else what its text says."""
    if given.expires_on is not None or given.expiry_event.strip():
        return given.expires_on, given.expiry_event.strip()[:300]
    if text.expiry_days and signature.signed_on:
        return signature.signed_on + datetime.timedelta(days=text.expiry_days), ""
    if rules.NO_EXPIRATION_WORDS.match(text.expiration) or not text.expiration.strip():
        return None, ""
    if text.origin == "recorded":
        # A form recorded from elsewhere states its end in expires_on or expiry_event: words such as
        # "one year after signing" cannot be held against a calendar.
        return None, ""
    return None, text.expiration.strip()[:300]


def expiration_words(expires_on: datetime.date | None, expiry_event: str) -> str:
    if expires_on is not None:
        return f"This authorization ends on {expires_on.strftime('%B')} {expires_on.day}, {expires_on.year}."
    return f"This authorization ends when this happens: {expiry_event}"


def signed_form(
    *,
    text: AuthorizationText,
    signature: Signature,
    circumstances: Circumstances,
    expires_on: datetime.date | None,
    expiry_event: str,
    expiry_event_occurred_on: datetime.date | None = None,
    revoked_on: datetime.date | None = None,
    known_false: bool = False,
) -> rules.SignedForm:
    return rules.SignedForm(
        kind=text.kind,
        **{name: getattr(text, name) for name in AUTHORIZATION_TEXT_ELEMENTS},
        remuneration_involved=text.remuneration_involved,
        remuneration_statement=text.remuneration_statement,
        extra_text="\n".join([text.media_use, text.media_distribution, text.media_duration]),
        expires_on=expires_on,
        expiry_event=expiry_event,
        expiry_event_occurred_on=expiry_event_occurred_on,
        signer_name=signature.signer_name,
        signed_on=signature.signed_on,
        by_representative=signature.by_representative,
        representative_authority=signature.representative_authority,
        initiated_by=circumstances.initiated_by,
        combined_with=frozenset(circumstances.combined_with),
        conditioned_on=frozenset(circumstances.conditioned_on),
        revoked_on=revoked_on,
        known_false=known_false,
    )


def authorization_form(*, authorization: Authorization) -> rules.SignedForm:
    """The stored authorization as the validator reads it (system use: decrypts the signer's name)."""
    tenant_zone = zoneinfo.ZoneInfo(authorization.tenant.timezone)
    expires_on = authorization.expires_on
    if expires_on is None and authorization.expires_at is not None:
        # Recorded before calendar dates were kept: the last instant it allowed anything.
        last = authorization.expires_at - datetime.timedelta(microseconds=1)
        expires_on = timezone.localdate(last, timezone=tenant_zone)
    revoked_at = authorization.revoked_at
    return signed_form(
        text=authorization.text,
        signature=Signature(
            signer_name=authorization.signer_name or "",
            signed_on=authorization.signed_on,
            by_representative=authorization.by_representative,
            representative_authority=authorization.representative_authority or "",
        ),
        circumstances=Circumstances(
            initiated_by=authorization.initiated_by,
            combined_with=frozenset(authorization.combined_with),
            conditioned_on=frozenset(authorization.conditioned_on),
        ),
        expires_on=expires_on,
        expiry_event=authorization.expiry_event,
        expiry_event_occurred_on=authorization.expiry_event_occurred_on,
        revoked_on=timezone.localdate(revoked_at, timezone=tenant_zone) if revoked_at else None,
        known_false=authorization.known_false or authorization.status == Authorization.Status.INVALID,
    )


def authorization_text_from_elements(
    *, tenant: Tenant, kind: str, title: str, elements: dict
) -> AuthorizationText:
    """An unsaved text holding the words of a form signed elsewhere (saved once the form is valid)."""
    if kind not in AuthorizationKind.values:
        raise ApplicationError("Unknown kind of authorization.", code="kind_invalid")
    words = {key: str(elements.get(key) or "").strip() for key in AUTHORIZATION_TEXT_ELEMENTS}
    return AuthorizationText(
        tenant=tenant,
        kind=kind,
        title=(title or "Authorization recorded from a signed form").strip()[:200],
        remuneration_involved=bool(elements.get("remuneration_involved")),
        remuneration_statement=str(elements.get("remuneration_statement") or "").strip(),
        origin="recorded",
        **words,
    )


def _check_attachment(attachment: Attachment | None) -> None:
    if attachment is None:
        return
    if attachment.content_type not in ATTACHMENT_TYPES:
        raise ApplicationError(
            "The scanned form must be a PDF, PNG, JPEG or TIFF file.", code="attachment_type_invalid"
        )
    if not attachment.content or len(attachment.content) > MAX_ATTACHMENT_BYTES:
        raise ApplicationError(
            f"The scanned form must be between 1 byte and {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB.",
            code="attachment_size_invalid",
        )


def _signed_at(tenant: Tenant, signed_on: datetime.date, occurred_at: datetime.datetime) -> datetime.datetime:
    """When it was signed: the moment of the evidence for a form signed today, else the start of the
    day written next to the signature (a backdated form claims no more than its date)."""
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    if signed_on >= timezone.localdate(occurred_at, timezone=zone):
        return occurred_at  # signed now (a signer a time zone ahead may write tomorrow's date)
    return min(occurred_at, datetime.datetime.combine(signed_on, datetime.time(0), tzinfo=zone))


@transaction.atomic
def authorization_record(
    *,
    tenant: Tenant,
    contact: Contact,
    text: AuthorizationText,
    signature: Signature,
    circumstances: Circumstances,
    evidence: Evidence,
    submission_key: str,
    attachment: Attachment | None = None,
    channels: tuple[str, ...] = (Channel.EMAIL,),
    extra_defects: tuple[rules.Defect, ...] = (),
) -> tuple[Authorization, bool]:
    """Validate and store a signed form; (authorization, created). The same submission_key twice
    returns the first authorization. Raises AuthorizationDefective with every defect."""
    if contact.tenant_id != tenant.pk or (text.tenant_id and text.tenant_id != tenant.pk):
        raise NotFound("No such contact or document.", code="not_found")
    with tenant_context(tenant):
        existing = Authorization.objects.for_tenant(tenant).filter(submission_key=submission_key).first()
    if existing is not None:
        return existing, False
    if contact.is_minor and not signature.by_representative:
        # A minor cannot sign for themselves: whoever signs is a personal representative.
        signature = Signature(
            signature.signer_name, signature.signed_on, True, signature.representative_authority
        )
    expires_on, expiry_event = _expiration(text, signature, circumstances)
    form = signed_form(
        text=text,
        signature=signature,
        circumstances=circumstances,
        expires_on=expires_on,
        expiry_event=expiry_event,
    )
    defects = [*extra_defects, *rules.authorization_defects(form=form, today=tenant_today(tenant))]
    if defects:
        raise AuthorizationDefective(defects)
    if not channels or set(channels) - set(Channel.values):
        raise ApplicationError("Unknown channel.", code="channels_invalid")
    if circumstances.form_source not in FormSource.values:
        raise ApplicationError("Unknown form source.", code="form_source_invalid")
    _check_attachment(attachment)
    if text._state.adding and not text.expiration.strip():
        # A form recorded from elsewhere may give its end only as a date or event: the text keeps it
        # in words too (every stored text states its expiration; the database insists).
        text.expiration = expiration_words(expires_on, expiry_event)
    return _store(
        tenant=tenant,
        contact=contact,
        text=text,
        signature=signature,
        circumstances=circumstances,
        expires_on=expires_on,
        expiry_event=expiry_event,
        evidence=evidence,
        submission_key=submission_key,
        attachment=attachment,
        channels=channels,
    )


def _save_text(tenant: Tenant, text: AuthorizationText, actor: Actor) -> None:
    latest = AuthorizationText.objects.for_tenant(tenant).filter(kind=text.kind).order_by("-version").first()
    text.version = (latest.version + 1) if latest else 1
    text.created_by = actor.reference
    text.save()


def _store(*, tenant, contact, text, signature, circumstances, expires_on, expiry_event, evidence,
           submission_key, attachment, channels) -> tuple[Authorization, bool]:  # fmt: skip
    fields = evidence.fields()
    signed_at = _signed_at(tenant, signature.signed_on, fields["occurred_at"])
    rule = contact_rule(tenant=tenant, contact=contact)
    recorder = evidence.actor.reference
    with tenant_context(tenant):
        if text._state.adding:
            _save_text(tenant, text, evidence.actor)
        authorization = Authorization(
            tenant=tenant,
            contact=contact,
            text=text,
            kind=text.kind,
            signer_name=signature.signer_name.strip(),
            signed_on=signature.signed_on,
            signed_at=signed_at,
            intent_confirmed=True,
            by_representative=signature.by_representative,
            representative_authority=signature.representative_authority.strip() or None,
            # State waiting periods: the authorization exists at once but allows nothing before this.
            effective_from=signed_at + datetime.timedelta(days=rule.waiting_period_days),
            expires_on=expires_on,
            expires_at=day_end(tenant, expires_on) if expires_on else None,
            expiry_event=expiry_event,
            initiated_by=circumstances.initiated_by,
            combined_with=sorted(circumstances.combined_with),
            conditioned_on=sorted(circumstances.conditioned_on),
            form_source=circumstances.form_source,
            recorded_by=recorder,
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
        if attachment is not None:
            AuthorizationAttachment.objects.create(
                tenant=tenant,
                authorization=authorization,
                content_type=attachment.content_type,
                size=len(attachment.content),
                sha256=hashlib.sha256(attachment.content).hexdigest(),
                content=base64.b64encode(attachment.content).decode(),
            )
        self_signed = fields["source"] == Source.WEB_FORM and evidence.actor.kind == "recipient"
        kind = AuthorizationEvent.Kind.SIGNED if self_signed else AuthorizationEvent.Kind.RECORDED
        AuthorizationEvent.objects.create(
            tenant=tenant, authorization=authorization, contact=contact, kind=kind, **fields
        )
        audit.record(
            actor=evidence.actor,
            action="authorization.sign" if self_signed else "authorization.record",
            target=authorization,
            tenant=tenant,
            details={
                "contact": str(contact.pk),
                "text": str(text.pk),
                "version": text.version,
                "kind": text.kind,
                "form_source": circumstances.form_source,
                "backdated": signature.signed_on < tenant_today(tenant),
                "attachment": attachment is not None,
                "state_rules": list(rule.codes),
                "by_representative": authorization.by_representative,
            },
        )
    return authorization, True
