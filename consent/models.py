"""Consent records, HIPAA authorizations, preferences, waivers and suppression.

History tables (events, texts) are append-only: a database trigger refuses UPDATE, DELETE and
TRUNCATE (migration 0002). Current state is kept in small maintained tables (ConsentState,
Authorization.status, Suppression.removed_at) so the send gate reads one row per contact.
Business rules live in services.py and gate.py; here only data and the invariants the database holds.
"""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from contacts.models import Contact
from healthmail.crypto.fields import EncryptedTextField, PhiClass
from healthmail.tenants.models import TenantOwnedModel


class Purpose(models.TextChoices):
    """Why a message is sent. The first three are transactional (HIPAA treatment, payment and
    health-care operations, 45 CFR 164.506) and need no marketing consent."""

    TREATMENT = "treatment", "Treatment"
    PAYMENT = "payment", "Payment"
    OPERATIONS = "operations", "Health-care operations"
    MARKETING = "marketing", "Marketing"
    RESEARCH = "research", "Research"
    FUNDRAISING = "fundraising", "Fundraising"


TRANSACTIONAL_PURPOSES = frozenset({Purpose.TREATMENT, Purpose.PAYMENT, Purpose.OPERATIONS})
TOPIC_PURPOSES = (Purpose.MARKETING, Purpose.RESEARCH, Purpose.FUNDRAISING)


class Channel(models.TextChoices):
    EMAIL = "email", "Email"


class Source(models.TextChoices):
    """Where the evidence of a consent change came from."""

    WEB_FORM = "web_form", "Web form"
    API = "api", "API"
    IMPORT = "import", "Import"
    PAPER = "paper", "Paper form"
    VERBAL = "verbal", "Verbal"
    SYSTEM = "system", "System (expiry, reminders)"


class Evidence(models.Model):
    """What every history row proves: when, from where, through what, shown which text, by whom."""

    source = models.CharField(max_length=16, choices=Source.choices)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True


class Topic(TenantOwnedModel):
    """What a person may opt in to or out of. System topics exist in every tenant (created on first
    use); tenants add their own marketing topics."""

    SYSTEM = {
        "marketing_newsletters": ("Newsletters", Purpose.MARKETING),
        "service_announcements": ("New services and announcements", Purpose.MARKETING),
        "research": ("Research studies", Purpose.RESEARCH),
        "fundraising": ("Fundraising", Purpose.FUNDRAISING),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    purpose = models.CharField(
        max_length=16, choices=[(p.value, p.label) for p in TOPIC_PURPOSES], default=Purpose.MARKETING
    )
    is_system = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_system", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="consent_topic_key_unique")]

    def __str__(self) -> str:
        return self.name


class ConsentText(TenantOwnedModel):
    """A version of wording shown to people (opt-in, preference center, waiver risk). Immutable."""

    class Kind(models.TextChoices):
        OPT_IN = "opt_in", "Opt-in wording"
        PREFERENCE_CENTER = "preference_center", "Preference center"
        UNENCRYPTED_WAIVER = "unencrypted_waiver", "Unencrypted email: risk explanation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    version = models.PositiveIntegerField()
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "version"], name="consent_text_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} v{self.version}"


class ConsentEvent(Evidence, TenantOwnedModel):
    """One change of a person's consent for a topic on a channel. Append-only.

    Retention: these rows must outlive the campaigns they allowed (HIPAA 164.316(b)(2): six years).
    If a disposal run must ever delete them, it will need its own guarded path through the trigger.
    """

    class Kind(models.TextChoices):
        GRANTED = "granted", "Granted"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    topic = models.ForeignKey(Topic, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    text = models.ForeignKey(ConsentText, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["tenant", "contact", "occurred_at"], name="consent_event_contact")]

    def __str__(self) -> str:
        return f"{self.kind} {self.topic_id} for {self.contact_id}"


class ConsentState(TenantOwnedModel):
    """The latest ConsentEvent per (contact, channel, topic), maintained in the same transaction."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    topic = models.ForeignKey(Topic, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=ConsentEvent.Kind.choices)
    event = models.ForeignKey(ConsentEvent, on_delete=models.PROTECT, related_name="+")
    occurred_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "contact", "channel", "topic"], name="consent_state_unique"
            )
        ]
        indexes = [
            # Who holds a topic's consent: scanned by topic, or probed per contact, without the table
            # (a segment's consent condition, segmentation/strategies.py).
            models.Index(
                fields=["tenant", "topic", "status", "channel", "contact"], name="consent_state_topic_contact"
            )
        ]

    def __str__(self) -> str:
        return f"{self.status} {self.topic_id} for {self.contact_id}"


class Frequency(models.TextChoices):
    AS_PUBLISHED = "as_published", "Whenever there is news"
    WEEKLY = "weekly", "At most once a week"
    MONTHLY = "monthly", "At most once a month"


class ContactPreference(TenantOwnedModel):
    """Frequency and pause chosen in the preference center (current values; history below)."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    frequency = models.CharField(max_length=16, choices=Frequency.choices, default=Frequency.AS_PUBLISHED)
    paused_until = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "contact"], name="consent_preference_unique")
        ]

    def __str__(self) -> str:
        return f"preferences of {self.contact_id}"


class PreferenceChange(Evidence, TenantOwnedModel):
    """History of frequency and pause changes. Append-only."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    field = models.CharField(max_length=16)
    value = models.CharField(max_length=32, blank=True)
    text = models.ForeignKey(ConsentText, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["tenant", "contact"], name="consent_pref_change_contact")]

    def __str__(self) -> str:
        return f"{self.field} change for {self.contact_id}"


# --- HIPAA authorizations ----------------------------------------------------------------------------


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


# --- Unencrypted-email waiver ---------------------------------------------------------------------


class UnencryptedEmailWaiver(TenantOwnedModel):
    """A patient's request to receive email without encryption after being told the risk
    (45 CFR 164.522(b); HHS FAQ 570). Honoured only where the tenant allows it, for its purposes."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        WITHDRAWN = "withdrawn", "Withdrawn"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    purposes = ArrayField(models.CharField(max_length=16, choices=Purpose.choices))
    risk_text = models.ForeignKey(ConsentText, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    requested_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "contact"], condition=Q(status="active"), name="waiver_one_active"
            )
        ]

    def __str__(self) -> str:
        return f"unencrypted-email waiver {self.pk}"


class WaiverEvent(Evidence, TenantOwnedModel):
    class Kind(models.TextChoices):
        REQUESTED = "requested", "Requested"
        WITHDRAWN = "withdrawn", "Withdrawn"
        # The tenant stopped honouring waivers: ended for good, re-allowing later revives nothing.
        ENDED = "ended", "Ended (waivers turned off)"

    id = models.BigAutoField(primary_key=True)
    waiver = models.ForeignKey(UnencryptedEmailWaiver, on_delete=models.PROTECT, related_name="events")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    purposes = ArrayField(models.CharField(max_length=16), default=list)
    text = models.ForeignKey(ConsentText, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"waiver {self.kind} for {self.contact_id}"


class MailboxCheck(TenantOwnedModel):
    """Proof of the mailbox before a patient lowers their own protection from a link: a one-time code
    sent to the contact's address (hashed, short-lived, limited attempts). It holds the change asked
    for, so the code confirms exactly that change and nothing a later request might add."""

    class Action(models.TextChoices):
        WAIVER_REQUEST = "waiver_request", "Email without encryption"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    purposes = ArrayField(models.CharField(max_length=16, choices=Purpose.choices), default=list)
    text = models.ForeignKey(ConsentText, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "contact", "action"], name="consent_mailbox_check")]

    def __str__(self) -> str:
        return f"mailbox check {self.pk}"


class WaiverDocument(TenantOwnedModel):
    """The scanned paper a waiver given outside the web was recorded from, sealed like any PHI."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    waiver = models.ForeignKey(UnencryptedEmailWaiver, on_delete=models.PROTECT, related_name="documents")
    name = EncryptedTextField(phi_class=PhiClass.IDENTIFIER)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    content = EncryptedTextField(phi_class=PhiClass.CONTENT, help_text="Base64 of the file.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=80, help_text="Actor reference.")

    def __str__(self) -> str:
        return f"waiver document {self.pk}"


# --- Suppression ----------------------------------------------------------------------------------


class Suppression(TenantOwnedModel):
    """Do-not-email entry, keyed by contact and by the email's blind index, so a re-imported address
    stays suppressed. Removal keeps the row (removed_at, reason) for the record."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        COMPLAINT = "complaint", "Spam complaint"
        UNSUBSCRIBE_ALL = "unsubscribe_all", "Unsubscribed from all"
        LEGAL_REQUEST = "legal_request", "Legal request"
        MANUAL = "manual", "Added by staff"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    email_index = models.BinaryField(null=True, blank=True)
    # Under the index-key version a rotation is adding (crypto/index_rotation.py); empty otherwise.
    email_index_next = models.BinaryField(null=True, blank=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    note = models.CharField(max_length=200, blank=True, help_text="A reference, never PHI.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=80)
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.CharField(max_length=80, blank=True)
    removed_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(contact__isnull=False) | Q(email_index__isnull=False), name="suppression_has_key"
            ),
            # Also the gate's lookup indexes (active rows by contact, by address).
            models.UniqueConstraint(
                fields=["tenant", "contact", "reason"],
                condition=Q(removed_at__isnull=True, contact__isnull=False),
                name="suppression_contact_once",
            ),
            models.UniqueConstraint(
                fields=["tenant", "email_index", "reason"],
                condition=Q(removed_at__isnull=True, email_index__isnull=False),
                name="suppression_email_once",
            ),
        ]
        indexes = [
            # The gate's lookup by address while an index-key rotation fills in the next index.
            models.Index(
                fields=["tenant", "email_index_next"],
                condition=Q(removed_at__isnull=True, email_index_next__isnull=False),
                name="suppression_email_next",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} suppression"


# --- Tenant consent settings ----------------------------------------------------------------------


class ConsentSettings(TenantOwnedModel):
    class StateMode(models.TextChoices):
        STRICTEST = "strictest", "Strictest rule of every state we operate in, for all contacts"
        PER_CONTACT = "per_contact", "The rule of each contact's own state"

    id = models.BigAutoField(primary_key=True)
    operating_states = ArrayField(models.CharField(max_length=2), default=list, blank=True)
    state_mode = models.CharField(max_length=16, choices=StateMode.choices, default=StateMode.STRICTEST)
    allow_unencrypted_waivers = models.BooleanField(default=False)
    reminder_days_before_expiry = models.PositiveSmallIntegerField(default=30)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="consent_settings_one_per_tenant")]

    def __str__(self) -> str:
        return f"consent settings of {self.tenant_id}"
