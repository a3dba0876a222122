"""Oversight chores: BAA reminders, periodic access reviews, policy acknowledgements."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from healthmail.accounts.roles import Role
from healthmail.tenants.models import TenantOwnedModel

_USER = settings.AUTH_USER_MODEL


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
