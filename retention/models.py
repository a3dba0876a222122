"""Retention: versioned policies per record category, legal holds, disposal runs with their candidate
lists and certificates, exceptions, the archive and evidence export packages.

Rows here carry references (record ids, category keys, user ids), never PHI values; the archive and
the export packages hold PHI sealed with their own keys, like the records they came from.
"""

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from healthmail.crypto.fields import EncryptedJSONField, PhiClass
from healthmail.tenants.models import TenantOwnedModel

if TYPE_CHECKING:
    from healthmail.sysmail.selectors import Delivery

_USER = settings.AUTH_USER_MODEL


class Action(models.TextChoices):
    DESTROY = "destroy", "Destroy"
    ARCHIVE = "archive", "Move to archive"
    REVIEW = "review", "Review (no automatic action)"


class RetentionPolicy(TenantOwnedModel):
    """One version of a tenant's policy for one category. Versions are never edited: a change is a
    new version, effective once approved; the version in force at a moment is the newest approved
    version whose `effective_from` is not after it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        ACTIVE = "active", "In force"
        SUPERSEDED = "superseded", "Superseded"
        REJECTED = "rejected", "Rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    category = models.CharField(max_length=48)
    version = models.PositiveIntegerField()
    min_retention_days = models.PositiveIntegerField()
    max_retention_days = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no maximum.")
    archive_after_days = models.PositiveIntegerField(null=True, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    approval_required = models.BooleanField(default=True, help_text="Disposal runs wait for approval.")
    # [{"citation": ..., "rule": ..., "years": ..., "applies": ...}], the longest gives the minimum.
    legal_basis = models.JSONField(default=list)
    rationale = models.TextField()
    reason = models.CharField(max_length=500, help_text="Why this version was written.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    approved_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    effective_from = models.DateTimeField(null=True, blank=True)
    # Four eyes: set when the author approved it as the tenant's sole officer (why no second person).
    sole_officer_reason = models.CharField(max_length=1000, blank=True)
    is_shipped_default = models.BooleanField(default=False)

    class Meta:
        ordering = ["category", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "category", "version"], name="retention_policy_version"
            ),
            models.UniqueConstraint(
                fields=["tenant", "category"],
                condition=Q(status="active"),
                name="retention_policy_one_active",
            ),
            models.CheckConstraint(
                condition=Q(max_retention_days__isnull=True)
                | Q(max_retention_days__gte=F("min_retention_days")),
                name="retention_policy_max_not_below_min",
            ),
            models.CheckConstraint(
                condition=Q(archive_after_days__isnull=True)
                | Q(max_retention_days__isnull=True)
                | Q(archive_after_days__lte=F("max_retention_days")),
                name="retention_policy_archive_before_max",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category} v{self.version}"


# Topics of the system mail about holds (healthmail/sysmail): pages look its delivery up by them.
HOLD_NOTICE_TOPIC = "retention.hold_notice"
HOLD_REVIEW_TOPIC = "retention.hold_review"


class LegalHold(TenantOwnedModel):
    """Freezes every record in its scope: nothing covered is destroyed or altered while it is active.

    Scope dimensions combine with AND; an empty dimension does not narrow. Custodians narrow only
    categories that record who acted (audit events, exports); they are always notified."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RELEASED = "released", "Released"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    matter = models.CharField(max_length=200)
    reason = models.CharField(max_length=1000)
    counsel = models.CharField(max_length=200)
    contact_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    sources = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    categories = ArrayField(models.CharField(max_length=48), default=list, blank=True)
    date_from = models.DateField(null=True, blank=True)
    date_to = models.DateField(null=True, blank=True)
    free_query = models.CharField(max_length=1000, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    approved_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    approval_sole_officer_reason = models.CharField(max_length=1000, blank=True)
    review_every_days = models.PositiveSmallIntegerField(default=90)
    next_review_at = models.DateTimeField()
    last_reviewed_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.CharField(max_length=1000, blank=True)
    # A release is asked for, then confirmed by a second officer (four eyes).
    release_requested_by = models.ForeignKey(
        _USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    release_requested_at = models.DateTimeField(null=True, blank=True)
    release_sole_officer_reason = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "status"], name="legal_hold_status")]
        constraints = [
            models.CheckConstraint(
                condition=Q(date_from__isnull=True)
                | Q(date_to__isnull=True)
                | Q(date_to__gte=F("date_from")),
                name="legal_hold_date_range",
            ),
            models.CheckConstraint(
                condition=Q(status="active") | (Q(released_at__isnull=False) & ~Q(release_reason="")),
                name="legal_hold_release_reasoned",
            ),
        ]

    def __str__(self) -> str:
        return self.matter


class HoldCustodian(TenantOwnedModel):
    """A person told to preserve what they hold for a matter; the acknowledgement is tracked."""

    id = models.BigAutoField(primary_key=True)
    hold = models.ForeignKey(LegalHold, on_delete=models.CASCADE, related_name="custodians")
    user = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "hold", "user"], name="hold_custodian_once")]

    # Not a column: the latest notice mailed to the custodian, set by selectors.hold_custodians.
    email_delivery: "Delivery | None"

    def __str__(self) -> str:
        return f"custodian {self.user_id} of {self.hold_id}"


class DisposalRun(TenantOwnedModel):
    class Status(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "Waiting for approval"
        APPROVED = "approved", "Approved, queued"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        HALTED = "halted", "Stopped: counts disagree with the database"

    OPEN = ("awaiting_approval", "approved", "running")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=24, choices=Status.choices)
    trigger = models.CharField(max_length=16, default="scheduled")  # scheduled | manual
    as_of = models.DateTimeField(help_text="Records are judged against policy at this moment.")
    categories = ArrayField(models.CharField(max_length=48), default=list)
    policy_versions = models.JSONField(default=dict)  # category -> {"id", "version", "max_days"}
    preview = models.JSONField(default=dict)  # category -> {"candidates", "held", "excepted", "samples"}
    requires_approval = models.BooleanField(default=True)
    requested_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    planned_at = models.DateTimeField(default=timezone.now)
    approved_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    approval_sole_officer_reason = models.CharField(max_length=1000, blank=True)
    cancelled_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    cancel_reason = models.CharField(max_length=500, blank=True)
    # Why the run stopped without a certificate (what the database did differs from its counts).
    halt_reason = models.TextField(blank=True)
    executed_by = models.CharField(max_length=80, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    batches_done = models.PositiveIntegerField(default=0)
    total_candidates = models.PositiveIntegerField(default=0)
    destroyed_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    # category -> {model label: rows} deleted with the category's records (attempts, portal copies),
    # as the database returned them; printed on the certificate.
    removed_along = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-planned_at"]
        indexes = [models.Index(fields=["tenant", "status"], name="disposal_run_status")]

    def __str__(self) -> str:
        return f"disposal run {self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    @property
    def progress_percent(self) -> int:
        done = self.destroyed_count + self.skipped_count
        return 100 if not self.total_candidates else min(100, done * 100 // self.total_candidates)


class DisposalCandidate(TenantOwnedModel):
    """One record a run found past its maximum retention. The state moves in the same transaction
    as the record's destruction, so a crash never leaves a record half-done or miscounted."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DESTROYED = "destroyed", "Destroyed"
        SKIPPED = "skipped", "Skipped"

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(DisposalRun, on_delete=models.PROTECT, related_name="+")
    category = models.CharField(max_length=48)
    record_id = models.CharField(max_length=64)
    clock_at = models.DateTimeField()
    contact_id = models.UUIDField(null=True, blank=True)
    # NULL, not "": the category has no source / records no actor (the hold rule tells them apart).
    source_ref = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    actor_ref = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    skip_reason = models.CharField(max_length=32, blank=True)  # held | exception | policy_changed | missing
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["tenant", "run", "category", "id"],
                condition=Q(state="pending"),
                name="disposal_candidate_pending",
            ),
            models.Index(fields=["tenant", "run", "state"], name="disposal_candidate_state"),
        ]

    def __str__(self) -> str:
        return f"{self.category}:{self.record_id} ({self.state})"


class DestructionCertificate(TenantOwnedModel):
    """What one run destroyed, signed. `document` is the canonical content the signature covers;
    its `manifest_sha256` is recomputed from the run's destroyed record ids to verify it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.OneToOneField(DisposalRun, on_delete=models.PROTECT, related_name="certificate")
    issued_at = models.DateTimeField(default=timezone.now)
    record_count = models.PositiveIntegerField()
    manifest_sha256 = models.CharField(max_length=64)
    document = models.JSONField()
    signature = models.CharField(max_length=128)
    key_id = models.CharField(max_length=32)
    pdf = models.BinaryField()

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return f"destruction certificate {self.pk}"


class RetentionException(TenantOwnedModel):
    """A time-limited extension for named records: requested, then approved by a second officer."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    category = models.CharField(max_length=48)
    record_ids = ArrayField(models.CharField(max_length=64))
    reason = models.CharField(max_length=1000)
    extend_until = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REQUESTED)
    requested_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.CharField(max_length=500, blank=True)
    sole_officer_reason = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"exception {self.pk} ({self.status})"


class ArchivedRecord(TenantOwnedModel):
    """A record moved out of its live table. The snapshot is sealed like the live row was (tenant data
    key, bound to this row); content keeps its own object key, so disposal can still crypto-shred it.
    `part_key_ids`: the object keys of the record's other sealed parts (a portal copy's replies)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    category = models.CharField(max_length=48)
    record_id = models.CharField(max_length=64)
    clock_at = models.DateTimeField()
    contact_id = models.UUIDField(null=True, blank=True)
    source_ref = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001 - as on candidates
    snapshot = EncryptedJSONField(phi_class=PhiClass.CONTENT)
    content_key = models.ForeignKey(
        "crypto.ObjectKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    content = models.BinaryField(null=True, blank=True)
    part_key_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    archived_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-clock_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "category", "record_id"], name="archived_record_once")
        ]
        indexes = [
            models.Index(fields=["tenant", "contact_id"], name="archived_record_contact"),
            models.Index(fields=["tenant", "category", "clock_at"], name="archived_record_clock"),
        ]

    def __str__(self) -> str:
        return f"archived {self.category}:{self.record_id}"


class EvidenceExport(TenantOwnedModel):
    """An evidence package for counsel or auditors. The ZIP holds decrypted records, so it is stored
    sealed under its own object key and falls under the `exports` retention category."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    purpose = models.CharField(max_length=500)
    recipient = models.CharField(max_length=200, help_text="Who the package is for (counsel, auditor).")
    hold = models.ForeignKey(LegalHold, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    scope = models.JSONField(default=dict)  # contact ids, categories, dates: references only
    created_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    file_name = models.CharField(max_length=200)
    package_sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveIntegerField(default=0)
    record_count = models.PositiveIntegerField(default=0)
    content_key = models.ForeignKey(
        "crypto.ObjectKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    content = models.BinaryField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"evidence export {self.pk}"
