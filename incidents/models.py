"""Incidents: what happened, its evidence, who it touched, the risk assessment, the decision, the
notices. Rows hold references (ids, states, counts) and the officers' own words; never PHI values."""

from __future__ import annotations

import datetime
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from healthmail.accounts.roles import Role
from healthmail.tenants.models import TenantOwnedModel

_USER = settings.AUTH_USER_MODEL


class Incident(TenantOwnedModel):
    class Status(models.TextChoices):
        OPEN = "open", "Open: investigating"
        PENDING_SIGN_OFF = "pending_sign_off", "Decision awaiting a second officer"
        BREACH = "breach", "Breach: notifying"
        NOT_BREACH = "not_breach", "Not a breach (low probability of compromise)"
        CLOSED = "closed", "Closed"

    class Decision(models.TextChoices):
        BREACH = "breach", "Breach"
        NOT_BREACH = "not_breach", "Not a breach: low probability that the PHI has been compromised"

    class Probability(models.TextChoices):
        LOW = "low", "Low probability of compromise"
        NOT_LOW = "not_low", "Not a low probability of compromise"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200)
    description = models.TextField(help_text="What happened, in plain words, without PHI values.")
    how_discovered = models.CharField(max_length=500)
    # 164.404(a)(2): the clock starts on the first day the breach is known, or would have been known
    # with reasonable diligence; the officer records that day, not the day the incident was filed.
    discovered_on = models.DateField()
    occurred_from = models.DateTimeField(null=True, blank=True)
    occurred_until = models.DateTimeField(null=True, blank=True)
    business_associate = models.BooleanField(
        default=False, help_text="Discovered by a business associate: the BAA's notice term applies."
    )
    baa = models.ForeignKey(
        "tenants.BusinessAssociateAgreement",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    opened_from_alert = models.ForeignKey(
        "audit.Alert", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    opened_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField(default=timezone.now)
    # How the affected individuals were derived (a window and an actor of the audit trail).
    derived_query = models.JSONField(default=dict, blank=True)
    # 164.402(2)(i)-(iv): the four factors, each with the officer's reasoning.
    factor_nature = models.TextField(blank=True)
    factor_recipient = models.TextField(blank=True)
    factor_acquired = models.TextField(blank=True)
    factor_mitigated = models.TextField(blank=True)
    probability = models.CharField(max_length=10, choices=Probability.choices, blank=True)
    assessed_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    assessed_at = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=12, choices=Decision.choices, blank=True)
    decision_reason = models.TextField(blank=True)
    proposed_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(null=True, blank=True)
    signed_off_by = models.ForeignKey(
        _USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_off_at = models.DateTimeField(null=True, blank=True)
    sole_officer_reason = models.CharField(max_length=1000, blank=True)
    # 164.404(c)(1)(B)-(E): the content every notice letter carries.
    phi_types = models.CharField(max_length=500, blank=True)
    steps_for_individuals = models.TextField(blank=True)
    what_we_are_doing = models.TextField(blank=True)
    contact_procedures = models.TextField(blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-discovered_on", "-opened_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(status__in=["breach", "not_breach"])
                | models.Q(signed_off_by__isnull=False, decision=models.F("status")),
                name="incident_decision_signed_off",
            ),
            models.CheckConstraint(
                condition=models.Q(occurred_until__isnull=True)
                | models.Q(occurred_from__isnull=True)
                | models.Q(occurred_until__gte=models.F("occurred_from")),
                name="incident_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.OPEN, self.Status.PENDING_SIGN_OFF, self.Status.BREACH)


class Evidence(TenantOwnedModel):
    class Kind(models.TextChoices):
        AUDIT_EVENT = "audit_event", "Audit event"
        ALERT = "alert", "Alert"
        MESSAGE = "message", "Message"
        EXPORT = "export", "Evidence export"

    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="evidence")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reference = models.CharField(max_length=64)
    note = models.CharField(max_length=500, blank=True)
    added_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "incident", "kind", "reference"], name="incident_evidence_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference}"


class AffectedIndividual(TenantOwnedModel):
    """A contact the incident touched, derived from the audit trail (events that name the contact)."""

    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected")
    contact = models.ForeignKey("contacts.Contact", on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=2, blank=True)  # for 164.406 (residents of a State)
    event_count = models.PositiveIntegerField(default=0)
    first_event_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "incident", "contact"], name="incident_affected_once")
        ]

    def __str__(self) -> str:
        return f"affected {self.contact_id}"


class Notice(TenantOwnedModel):
    """One notice sent or to be sent: to an individual (through the secure portal) or a substitute
    notice when the contact details do not allow a written one (164.404(d)(2))."""

    class Method(models.TextChoices):
        PORTAL = "portal", "Secure portal (email notice)"
        SUBSTITUTE = "substitute", "Substitute notice needed"

    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notices")
    audience = models.CharField(max_length=20)
    contact = models.ForeignKey(
        "contacts.Contact", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    method = models.CharField(max_length=12, choices=Method.choices)
    message_id = models.UUIDField(null=True, blank=True)  # the outbox row (delivery.Message)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "incident", "audience", "contact"], name="incident_notice_once_per_contact"
            )
        ]

    def __str__(self) -> str:
        return f"{self.audience} notice ({self.method})"


class ClockAlert(TenantOwnedModel):
    """A deadline alert raised once per incident, audience and threshold (30/14/7/1 days)."""

    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="clock_alerts")
    audience = models.CharField(max_length=40)
    threshold_days = models.PositiveSmallIntegerField()
    due_on = models.DateField()
    raised_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "incident", "audience", "threshold_days"], name="incident_clock_alert_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.audience} {self.threshold_days} days"


class AccessRequest(TenantOwnedModel):
    """A patient's request for access to their records (164.524): a 30-day clock from receipt, one
    extension of at most 30 days with a written reason, and the package delivered through the portal."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        EXTENDED = "extended", "Extended"
        DELIVERED = "delivered", "Delivered"
        DENIED = "denied", "Denied"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contact = models.ForeignKey("contacts.Contact", on_delete=models.PROTECT, related_name="+")
    received_on = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    recorded_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)
    extension_reason = models.CharField(max_length=1000, blank=True)
    extended_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    extended_at = models.DateTimeField(null=True, blank=True)
    delivered_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    delivered_at = models.DateTimeField(null=True, blank=True)
    message_id = models.UUIDField(null=True, blank=True)
    # The signed manifest of what was delivered: counts and SHA-256 of the package, no PHI values.
    manifest = models.JSONField(default=dict, blank=True)
    signature = models.CharField(max_length=128, blank=True)
    key_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-received_on", "-recorded_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(status="extended") | ~models.Q(extension_reason=""),
                name="access_request_extension_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"access request {self.received_on}"


class BaaReminder(TenantOwnedModel):
    """A BAA expiry reminder raised once per agreement and threshold (60/30/14/7/1 days)."""

    id = models.BigAutoField(primary_key=True)
    baa = models.ForeignKey("tenants.BusinessAssociateAgreement", on_delete=models.CASCADE, related_name="+")
    threshold_days = models.PositiveSmallIntegerField()
    expires_on = models.DateField()
    raised_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "baa", "threshold_days"], name="baa_reminder_once")
        ]

    def __str__(self) -> str:
        return f"BAA reminder {self.threshold_days} days"


class AccessReview(TenantOwnedModel):
    """A periodic access review: a tenant admin confirmed, for each member as of that moment, keep or
    remove, with a note. Written once and complete; the table is append-only (the review's evidence)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    due_on = models.DateField(help_text="The due date of the review period this review answers.")
    reviewed_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-reviewed_at"]

    def __str__(self) -> str:
        return f"access review {self.reviewed_at:%Y-%m-%d}"


class AccessReviewEntry(TenantOwnedModel):
    """One member as the review saw them (email and role then) and the admin's decision."""

    class Decision(models.TextChoices):
        KEEP = "keep", "Keep"
        REMOVE = "remove", "Remove"

    id = models.BigAutoField(primary_key=True)
    review = models.ForeignKey(AccessReview, on_delete=models.PROTECT, related_name="entries")
    membership = models.ForeignKey("accounts.Membership", on_delete=models.PROTECT, related_name="+")
    email = models.CharField(max_length=254)
    role = models.CharField(max_length=32, choices=Role.choices)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    note = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "review", "membership"], name="access_review_entry_once"
            ),
            models.CheckConstraint(
                condition=~models.Q(decision="remove") | ~models.Q(note=""),
                name="access_review_removal_has_note",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decision} {self.membership_id}"


class AccessReviewReminder(TenantOwnedModel):
    """A reminder that the access review is due, raised once per due date and threshold."""

    id = models.BigAutoField(primary_key=True)
    due_on = models.DateField()
    threshold_days = models.PositiveSmallIntegerField()
    raised_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "due_on", "threshold_days"], name="access_review_reminder_once"
            )
        ]

    def __str__(self) -> str:
        return f"access review reminder {self.threshold_days} days"


class Policy(TenantOwnedModel):
    """A policy the organization's members must acknowledge (security, privacy, acceptable use...).
    Its text lives in versions; the newest version is the current one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["title"]
        constraints = [models.UniqueConstraint(fields=["tenant", "title"], name="policy_title_unique")]

    def __str__(self) -> str:
        return self.title


class PolicyVersion(TenantOwnedModel):
    """One published text of a policy (append-only: what members acknowledged stays as they read it)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    text = models.TextField()
    published_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["policy", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "policy", "number"], name="policy_version_number_once")
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} v{self.number}"


class PolicyAcknowledgement(TenantOwnedModel):
    """A member acknowledged a version, at a time (append-only)."""

    id = models.BigAutoField(primary_key=True)
    version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="acknowledgements")
    user = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    acknowledged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "version", "user"], name="policy_acknowledged_once")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} acknowledged {self.version_id}"


class AudienceNotice(TenantOwnedModel):
    """A notice to the Secretary of HHS, a State's media or the covered entity (164.406-164.410): the
    officer prepares it from the incident's letter, sends it outside the platform, and records when,
    how and with which reference. The row keeps the letter's SHA-256, never its text (the covered
    entity's letter names the individuals)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="audience_notices")
    audience = models.CharField(max_length=40)
    state = models.CharField(max_length=2, blank=True)
    letter_sha256 = models.CharField(max_length=64)
    prepared_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    prepared_at = models.DateTimeField(default=timezone.now)
    sent_on = models.DateField(null=True, blank=True)
    sent_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=200, blank=True)
    reference = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["audience", "state"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "incident", "audience", "state"], name="incident_audience_notice_once"
            ),
            models.CheckConstraint(
                condition=models.Q(sent_on__isnull=True) | ~models.Q(channel=""),
                name="audience_notice_sent_says_how",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.audience} notice"


class LawEnforcementDelay(TenantOwnedModel):
    """A law enforcement official's statement that a notice would impede a criminal investigation or
    damage national security (164.412). Append-only: it is the record the delay rests on."""

    class Kind(models.TextChoices):
        WRITTEN = "written", "Written statement (delay for the time it specifies)"
        ORAL = "oral", "Oral statement (documented here; at most 30 days)"

    class Ground(models.TextChoices):
        INVESTIGATION = "investigation", "Would impede a criminal investigation"
        NATIONAL_SECURITY = "national_security", "Would cause damage to national security"

    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="delays")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    ground = models.CharField(max_length=20, choices=Ground.choices)
    official = models.CharField(max_length=300, help_text="The official's name, title and agency.")
    stated_on = models.DateField()
    delay_until = models.DateField(help_text="The first day notices may go out again.")
    statement = models.TextField(help_text="What the official stated (an oral statement, documented).")
    recorded_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["stated_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(delay_until__gt=models.F("stated_on")), name="delay_ends_after_statement"
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="oral")
                | models.Q(delay_until__lte=models.F("stated_on") + datetime.timedelta(days=30)),
                name="oral_delay_at_most_30_days",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} delay until {self.delay_until}"


class AccessDenial(TenantOwnedModel):
    """A denial of access, in whole or in part (164.524(a)(2)-(4), (d)). The written denial's content
    is kept here ((d)(2): basis, review rights, how to complain) and went to the patient through the
    portal; for a reviewable ground, the licensed professional's determination and the review."""

    class Ground(models.TextChoices):
        # (a)(2): unreviewable
        EXCEPTED = "a2i", "Excepted by (a)(1): psychotherapy notes, or compiled for a legal proceeding"
        INMATE = (
            "a2ii",
            "An inmate's copy would jeopardize health, safety, security, custody or rehabilitation",
        )
        RESEARCH = "a2iii", "Research that includes treatment, in progress, suspension agreed to"
        PRIVACY_ACT = "a2iv", "Records under the Privacy Act, denial permitted by that law"
        CONFIDENTIAL_SOURCE = "a2v", "Obtained under a promise of confidentiality: would reveal the source"
        # (a)(3): reviewable, on a licensed health care professional's determination
        ENDANGER = "a3i", "Reasonably likely to endanger the life or physical safety of someone"
        OTHER_PERSON = (
            "a3ii",
            "Refers to another person and reasonably likely to cause that person substantial harm",
        )
        REPRESENTATIVE = (
            "a3iii",
            "Personal representative's access reasonably likely to cause substantial harm",
        )

    class Outcome(models.TextChoices):
        UPHELD = "upheld", "Denial upheld"
        GRANTED = "granted", "Access to be provided"

    id = models.BigAutoField(primary_key=True)
    request = models.OneToOneField(AccessRequest, on_delete=models.PROTECT, related_name="denial")
    in_part = models.BooleanField(default=False)
    ground = models.CharField(max_length=6, choices=Ground.choices)
    basis = models.TextField()
    complaint_contact = models.CharField(max_length=200)
    complaint_phone = models.CharField(max_length=40)
    determined_by = models.ForeignKey(
        _USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    determined_license = models.CharField(max_length=100, blank=True)
    denied_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    denied_at = models.DateTimeField(default=timezone.now)
    message_id = models.UUIDField(null=True, blank=True)
    review_requested_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reviewer_license = models.CharField(max_length=100, blank=True)
    review_outcome = models.CharField(max_length=8, choices=Outcome.choices, blank=True)
    review_reason = models.TextField(blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(ground__startswith="a3")
                | models.Q(determined_by__isnull=False) & ~models.Q(determined_license=""),
                name="reviewable_denial_has_professional",
            ),
            models.CheckConstraint(
                condition=models.Q(ground__startswith="a3") | models.Q(review_requested_at__isnull=True),
                name="only_reviewable_denials_reviewed",
            ),
            models.CheckConstraint(
                condition=~models.Q(reviewed_by=models.F("determined_by"))
                & ~models.Q(reviewed_by=models.F("denied_by")),
                name="reviewer_not_in_the_denial",
            ),
        ]

    @property
    def reviewable(self) -> bool:
        return self.ground.startswith("a3")

    def __str__(self) -> str:
        return f"denial ({self.ground})"


class AccessFee(TenantOwnedModel):
    """The cost-based fee of 164.524(c)(4): only labor for copying, supplies (paper or portable media),
    postage (when mailed) and preparing an agreed summary; never searching or retrieving."""

    class CopyForm(models.TextChoices):
        PORTAL = "portal", "Electronic copy through the secure portal"
        PORTABLE_MEDIA = "portable_media", "Electronic copy on portable media"
        PAPER = "paper", "Paper copy"

    id = models.BigAutoField(primary_key=True)
    request = models.OneToOneField(AccessRequest, on_delete=models.PROTECT, related_name="fee")
    copy_form = models.CharField(max_length=16, choices=CopyForm.choices)
    mailed = models.BooleanField(default=False)
    summary_agreed = models.BooleanField(default=False)
    labor_cents = models.PositiveIntegerField(default=0)
    supplies_cents = models.PositiveIntegerField(default=0)
    postage_cents = models.PositiveIntegerField(default=0)
    summary_cents = models.PositiveIntegerField(default=0)
    total_cents = models.PositiveIntegerField()
    recorded_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    total_cents=models.F("labor_cents")
                    + models.F("supplies_cents")
                    + models.F("postage_cents")
                    + models.F("summary_cents")
                ),
                name="access_fee_total_adds_up",
            ),
            models.CheckConstraint(
                condition=models.Q(supplies_cents=0) | ~models.Q(copy_form="portal"),
                name="access_fee_supplies_only_paper_or_media",
            ),
            models.CheckConstraint(
                condition=models.Q(postage_cents=0) | models.Q(mailed=True),
                name="access_fee_postage_only_mailed",
            ),
            models.CheckConstraint(
                condition=models.Q(summary_cents=0) | models.Q(summary_agreed=True),
                name="access_fee_summary_only_agreed",
            ),
        ]

    def __str__(self) -> str:
        return f"fee {self.total_cents} cents"
