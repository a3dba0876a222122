"""HIPAA authorizations (45 CFR 164.508): their texts, signed forms, attachments and history."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from contacts.models import Contact
from healthmail.crypto.fields import EncryptedTextField, PhiClass
from healthmail.tenants.models import TenantOwnedModel

from .common import Channel, Evidence, Source


class AuthorizationKind(models.TextChoices):
    MARKETING = "marketing", "Marketing (HIPAA authorization)"
    RESEARCH = "research", "Research (HIPAA authorization)"
    MEDIA = "media", "Media / testimonial consent"


# The core elements of 45 CFR 164.508(c)(1)-(2), each a plain-language field of the text. Signature,
# date and a representative's authority (164.508(c)(1)(vi)) belong to the signed instance.
AUTHORIZATION_TEXT_ELEMENTS: dict[str, str] = {
    "phi_description": "a description of the information to be used or disclosed",
    "disclosers": "who may use or disclose the information",
    "recipients": "who will receive the information",
    "purpose": "the purpose of the use or disclosure",
    "expiration": "an expiration date or event",
    "revocation_rights": "the right to revoke and how to revoke",
    "conditioning_statement": "that treatment is not conditioned on signing",
    "redisclosure_statement": "that information disclosed may be redisclosed by the recipient",
}
MEDIA_TEXT_ELEMENTS: dict[str, str] = {
    "media_use": "how the photographs, recordings or story will be used",
    "media_distribution": "where they will be distributed",
    "media_duration": "how long they may be used",
}


class AuthorizationText(TenantOwnedModel):
    """A versioned authorization document. Immutable: a change is a new version. Never bundled with
    treatment consent: it is its own document with its own signature (164.508(b)(3))."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=AuthorizationKind.choices)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    phi_description = models.TextField()
    disclosers = models.TextField()
    recipients = models.TextField()
    purpose = models.TextField()
    expiration = models.TextField(help_text="The expiration date or event, in words.")
    expiry_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Ends this many days after signing (empty: ends with the event)."
    )
    revocation_rights = models.TextField()
    conditioning_statement = models.TextField()
    redisclosure_statement = models.TextField()
    remuneration_involved = models.BooleanField(default=False)
    remuneration_statement = models.TextField(blank=True)
    media_use = models.TextField(blank=True)
    media_distribution = models.TextField(blank=True)
    media_duration = models.TextField(blank=True)
    state_disclosures = models.TextField(blank=True, help_text="Added from the state rules that apply.")
    # Published: offered on the signing page. Recorded: the words of a form signed elsewhere (paper, an
    # EHR), kept as the document the authorization was recorded from; never offered for signing.
    origin = models.CharField(
        max_length=12, choices=[("published", "Published"), ("recorded", "Recorded")], default="published"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=80, blank=True, help_text="Actor reference.")

    class Meta:
        ordering = ["kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "version"], name="authorization_text_version"),
            # The database itself refuses a text missing a required element.
            models.CheckConstraint(
                condition=~Q(phi_description="")
                & ~Q(disclosers="")
                & ~Q(recipients="")
                & ~Q(purpose="")
                & ~Q(expiration="")
                & ~Q(revocation_rights="")
                & ~Q(conditioning_statement="")
                & ~Q(redisclosure_statement=""),
                name="authorization_text_core_elements",
            ),
            models.CheckConstraint(
                condition=Q(remuneration_involved=False) | ~Q(remuneration_statement=""),
                name="authorization_text_remuneration_stated",
            ),
            models.CheckConstraint(
                condition=~Q(kind="media")
                | (~Q(media_use="") & ~Q(media_distribution="") & ~Q(media_duration="")),
                name="authorization_text_media_elements",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"


class Initiator(models.TextChoices):
    COVERED_ENTITY = "covered_entity", "The covered entity asked for it"
    INDIVIDUAL = "individual", "The individual asked for it"


class FormSource(models.TextChoices):
    """Where the signed form itself lives."""

    PAPER = "paper", "Paper form"
    ELECTRONIC = "electronic", "Electronic form"
    EHR = "ehr", "Recorded in the EHR"


class Authorization(TenantOwnedModel):
    """A signed authorization. Its status changes (revoked, expired, invalid) by compare-and-set in
    services; AuthorizationEvent keeps the history. Validity is decided by
    consent.authorization_rules each time the gate asks; status is the record of what happened."""

    class Status(models.TextChoices):
        VALID = "valid", "Valid"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"
        INVALID = "invalid", "Invalid (known to be false)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    text = models.ForeignKey(AuthorizationText, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=AuthorizationKind.choices)
    signer_name = EncryptedTextField(phi_class=PhiClass.IDENTIFIER)
    signed_on = models.DateField(help_text="The date written next to the signature.")
    signed_at = models.DateTimeField()
    intent_confirmed = models.BooleanField()
    by_representative = models.BooleanField(default=False)
    representative_authority = EncryptedTextField(phi_class=PhiClass.IDENTIFIER, null=True, blank=True)
    effective_from = models.DateTimeField()
    # The last day the authorization allows anything; expires_at is the start of the next day in the
    # tenant's time zone (what the gate compares with now).
    expires_on = models.DateField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    expiry_event = models.CharField(max_length=300, blank=True)
    expiry_event_occurred_on = models.DateField(null=True, blank=True)
    initiated_by = models.CharField(
        max_length=16, choices=Initiator.choices, default=Initiator.COVERED_ENTITY
    )
    combined_with = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    conditioned_on = ArrayField(models.CharField(max_length=16), default=list, blank=True)
    known_false = models.BooleanField(default=False)
    form_source = models.CharField(max_length=12, choices=FormSource.choices, default=FormSource.ELECTRONIC)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.CharField(max_length=80, blank=True, help_text="Actor reference.")
    channels = ArrayField(models.CharField(max_length=8, choices=Channel.choices), default=list)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.VALID)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_via = models.CharField(max_length=16, choices=Source.choices, blank=True)
    revocation_received = models.CharField(max_length=16, blank=True, help_text="mail, in person, portal...")
    expired_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    # The signing link's nonce: a double-submitted form hits this constraint, never a second row.
    submission_key = models.CharField(max_length=64)

    class Meta:
        ordering = ["-signed_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "submission_key"], name="authorization_submitted_once"),
            models.CheckConstraint(condition=Q(intent_confirmed=True), name="authorization_intent"),
            models.CheckConstraint(
                condition=Q(effective_from__gte=models.F("signed_at")), name="authorization_effective_after"
            ),
            models.CheckConstraint(
                condition=~Q(status="revoked") | Q(revoked_at__isnull=False), name="authorization_revoked_at"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "contact", "kind", "status"], name="authorization_gate"),
            models.Index(fields=["tenant", "status", "expires_at"], name="authorization_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} authorization {self.pk}"


class AuthorizationAttachment(TenantOwnedModel):
    """The scanned signed form (the evidence of a backdated or paper signature), encrypted at rest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    authorization = models.ForeignKey(Authorization, on_delete=models.PROTECT, related_name="attachments")
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    content = EncryptedTextField(phi_class=PhiClass.CONTENT, help_text="Base64 of the file.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"attachment {self.pk}"


class AuthorizationEvent(Evidence, TenantOwnedModel):
    """History of an authorization. Append-only."""

    class Kind(models.TextChoices):
        SIGNED = "signed", "Signed"
        RECORDED = "recorded", "Recorded from a form signed elsewhere"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"
        EVENT_OCCURRED = "event_occurred", "Expiration event occurred"
        MARKED_FALSE = "marked_false", "Known to be false"
        COPY_DELIVERED = "copy_delivered", "Copy given to the individual"
        REMINDED = "reminded", "Renewal reminder sent"

    id = models.BigAutoField(primary_key=True)
    authorization = models.ForeignKey(Authorization, on_delete=models.PROTECT, related_name="events")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["tenant", "contact"], name="authorization_event_contact")]

    def __str__(self) -> str:
        return f"{self.kind} {self.authorization_id}"
