"""Templates (with per-language content, reusable blocks, tenant branding, frozen versions) and
campaigns (goal, audience, schedule, approval, A/B variants, launch exclusions).

Templates hold authored copy and merge-field placeholders, never a person's values, so they are
stored in plain text. Business rules live in campaigns/services/; here only data and invariants.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from delivery.models import EncryptionPolicy
from healthmail.tenants.models import TenantOwnedModel

COLOR = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #1d4e89.")
HTTPS_URL = RegexValidator(r"^https://[^\s\"'<>]+$", "Use an https:// address.")
LANGUAGE = RegexValidator(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$", "Use a language code like en or es-mx.")


class Branding(TenantOwnedModel):
    """How the tenant's email looks: logo, colours, an extra footer line. One per tenant."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sender_name = models.CharField(max_length=100, help_text="Shown as the sender and in the footer.")
    logo_url = models.CharField(max_length=500, blank=True, validators=[HTTPS_URL])
    primary_color = models.CharField(max_length=7, default="#1d4e89", validators=[COLOR])
    background_color = models.CharField(max_length=7, default="#f4f6f8", validators=[COLOR])
    text_color = models.CharField(max_length=7, default="#1f2933", validators=[COLOR])
    footer_text = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="campaign_branding_one_per_tenant")]

    def __str__(self) -> str:
        return f"branding of {self.tenant_id}"


class ContentBlock(TenantOwnedModel):
    """A reusable piece of HTML (a signature, a contact box), included with {% include "key" %}."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    html = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="campaign_block_key_unique")]

    def __str__(self) -> str:
        return self.name


class Template(TenantOwnedModel):
    class Kind(models.TextChoices):
        MARKETING = "marketing", "Campaign (marketing, research, fundraising)"
        TRANSACTIONAL = "transactional", "Transactional (API data allowed)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MARKETING)
    description = models.CharField(max_length=300, blank=True)
    default_language = models.CharField(max_length=12, default="en", validators=[LANGUAGE])
    # The last lint of the current content ({findings, fields, phi_fields}); refreshed on every save.
    lint = models.JSONField(default=dict, blank=True)
    has_errors = models.BooleanField(default=True)
    revision = models.PositiveIntegerField(default=1)
    # Removed while frozen versions of it exist (services/template_lifecycle.py): the versions are
    # evidence of what was sent and may not be deleted, so the template stays, hidden and unusable.
    archived_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # An archived template's name is free again: nobody sees it any more.
            models.UniqueConstraint(
                fields=["tenant", "name"],
                condition=Q(archived_at__isnull=True),
                name="campaign_template_name_unique",
            )
        ]

    def __str__(self) -> str:
        return self.name


class TemplateContent(TenantOwnedModel):
    """One language of a template."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="contents")
    language = models.CharField(max_length=12, validators=[LANGUAGE])
    subject = models.CharField(max_length=300)
    preheader = models.CharField(max_length=300, blank=True)
    html = models.TextField()
    text = models.TextField(blank=True, help_text="Leave empty to generate it from the HTML.")
    # The block editor's MJML; `html` is what mrml rendered from it. Empty when the HTML was written
    # by hand (a hand edit detaches the language from the block editor).
    mjml = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["language"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "template", "language"], name="campaign_template_language_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.template_id} [{self.language}]"


class TemplateVersion(TenantOwnedModel):
    """A template frozen for review and sending: every language and every included block as they
    were. Never updated; what was approved is exactly what goes out."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Template.Kind.choices)
    default_language = models.CharField(max_length=12)
    contents = models.JSONField(help_text="{language: {subject, preheader, html, text}}")
    blocks = models.JSONField(default=dict, blank=True, help_text="{key: html} of the included blocks.")
    fields = models.JSONField(default=list, blank=True)
    phi_fields = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=80, help_text="Actor reference.")

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "template", "number"], name="campaign_template_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.template_id} v{self.number}"


class Goal(models.TextChoices):
    ACQUISITION = "acquisition", "New patient acquisition"
    RE_ENGAGEMENT = "re_engagement", "Re-engage lapsed patients"
    AWARENESS = "awareness", "Awareness (vaccines, screenings, conditions)"
    ADHERENCE = "adherence", "Treatment or medication adherence"
    SURVEY = "survey", "Survey responses / patient-reported outcomes"
    APPOINTMENTS = "appointments", "Appointments booked"


class Metric(models.TextChoices):
    OPENS = "opens", "Opens"
    CLICKS = "clicks", "Clicks"
    CONVERSIONS = "conversions", "Conversions"


GOAL_DEFAULT_METRIC: dict[str, str] = {
    Goal.ACQUISITION: Metric.CONVERSIONS,
    Goal.RE_ENGAGEMENT: Metric.CLICKS,
    Goal.AWARENESS: Metric.OPENS,
    Goal.ADHERENCE: Metric.CONVERSIONS,
    Goal.SURVEY: Metric.CONVERSIONS,
    Goal.APPOINTMENTS: Metric.CONVERSIONS,
}


class Campaign(TenantOwnedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        APPROVED = "approved", "Approved"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"

    class TimezoneMode(models.TextChoices):
        TENANT = "tenant", "Organization's time zone"
        RECIPIENT = "recipient", "Each recipient's time zone"

    class AbDimension(models.TextChoices):
        SUBJECT = "subject", "Subject line"
        CONTENT = "content", "Content (template)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120)
    goal = models.CharField(max_length=16, choices=Goal.choices)
    primary_metric = models.CharField(max_length=16, choices=Metric.choices)
    goal_target = models.PositiveIntegerField(null=True, blank=True, help_text="Target count of the metric.")
    purpose = models.CharField(max_length=16)  # consent.models.Purpose
    topic = models.ForeignKey(
        "consent.Topic", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sender_domain = models.ForeignKey(
        "delivery.SenderDomain", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sender_name = models.CharField(max_length=100)
    from_local_part = models.CharField(max_length=64, default="hello")
    segment = models.ForeignKey(
        "segmentation.Segment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    template = models.ForeignKey(Template, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    template_version = models.ForeignKey(
        TemplateVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Frozen when submitted for review; what reviewers approve and what is sent.",
    )
    encryption_policy = models.CharField(
        max_length=20, choices=EncryptionPolicy.choices, default=EncryptionPolicy.TLS_ELSE_PORTAL
    )
    # Schedule: chosen when scheduling (after approval). No date = as soon as possible.
    send_date = models.DateField(null=True, blank=True)
    send_time = models.TimeField(null=True, blank=True)
    timezone_mode = models.CharField(max_length=16, choices=TimezoneMode.choices, default=TimezoneMode.TENANT)
    scheduled_for = models.DateTimeField(null=True, blank=True, help_text="Earliest send, for the launcher.")
    # The marketer scheduled it knowing nobody in the audience may receive it now; without this a
    # launch that would queue no message is refused rather than "sent" to nobody.
    empty_send_confirmed = models.BooleanField(default=False)
    window_start = models.TimeField(null=True, blank=True, help_text="Send only after this local time.")
    window_end = models.TimeField(null=True, blank=True, help_text="…and before this one.")
    throttle_per_hour = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    frequency_cap_count = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    frequency_cap_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    track_engagement = models.BooleanField(
        default=True, help_text="Count opens and clicks (never for contacts in a sensitive category)."
    )
    # A/B test
    ab_enabled = models.BooleanField(default=False)
    ab_dimension = models.CharField(max_length=8, choices=AbDimension.choices, default=AbDimension.SUBJECT)
    ab_test_percent = models.PositiveSmallIntegerField(
        default=20, validators=[MinValueValidator(2), MaxValueValidator(100)]
    )
    ab_winner_metric = models.CharField(max_length=16, choices=Metric.choices, default=Metric.OPENS)
    ab_wait_hours = models.PositiveSmallIntegerField(default=4, validators=[MaxValueValidator(168)])
    ab_winner = models.CharField(max_length=1, blank=True)
    ab_decided_at = models.DateTimeField(null=True, blank=True)
    # Workflow
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    status_reason = models.CharField(
        max_length=300, blank=True, help_text="Why the last step failed, if it did."
    )
    review_round = models.PositiveIntegerField(default=0)
    uses_phi = models.BooleanField(default=False)
    lint = models.JSONField(default=list, blank=True)
    has_errors = models.BooleanField(default=True)
    snapshot = models.ForeignKey(
        "segmentation.SegmentSnapshot", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recipient_count = models.PositiveIntegerField(default=0)
    excluded_counts = models.JSONField(default=dict, blank=True, help_text="{reason code: count}")
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="campaign_name_unique"),
            models.CheckConstraint(
                # PHI use is checked by the lint and again at launch; the database holds the rest.
                condition=~Q(encryption_policy="opportunistic") | Q(purpose="marketing"),
                name="campaign_opportunistic_only_marketing",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="campaign_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_locked(self) -> bool:
        """Sending or done: nothing may change any more."""
        return self.status in (
            self.Status.SENDING,
            self.Status.PAUSED,
            self.Status.SENT,
            self.Status.CANCELLED,
        )


class CampaignVariant(TenantOwnedModel):
    """One arm of an A/B test: another subject, or another template."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants")
    key = models.CharField(max_length=1)  # A, B, C, D
    subject = models.CharField(max_length=300, blank=True, help_text="Empty: the template's subject.")
    template = models.ForeignKey(Template, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    template_version = models.ForeignKey(
        TemplateVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "campaign", "key"], name="campaign_variant_key_unique"),
            models.CheckConstraint(
                condition=Q(key__in=["A", "B", "C", "D"]), name="campaign_variant_key_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"variant {self.key}"


class CampaignApproval(TenantOwnedModel):
    """A reviewer's decision in one review round. A new submission starts a new round."""

    class Kind(models.TextChoices):
        COMPLIANCE = "compliance", "Compliance"
        CLINICAL = "clinical", "Clinical (PHI use)"

    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Changes requested"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="approvals")
    round = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The version reviewed; none for a content A/B test, whose variants carry their own versions.
    template_version = models.ForeignKey(
        TemplateVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    comment = models.TextField(blank=True)
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["decided_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "campaign", "round", "kind"],
                condition=Q(decision="approved"),
                name="campaign_one_approval_per_kind_and_round",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.decision}"


class CampaignTransition(TenantOwnedModel):
    """The campaign's history as its people see it (each also an audit event)."""

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    action = models.CharField(max_length=32)
    actor = models.CharField(max_length=80, help_text="Actor reference.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comment = models.TextField(blank=True)
    occurred_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class CampaignExclusion(TenantOwnedModel):
    """Why a member of the audience got no message (the send gate's code, or a frequency cap)."""

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    contact_id = models.UUIDField()
    reason = models.CharField(max_length=48)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "campaign", "contact_id"], name="campaign_exclusion_once"
            )
        ]
        indexes = [models.Index(fields=["tenant", "campaign", "reason"], name="campaign_exclusion_reason")]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.reason}"
