"""Right of access (164.524): requests, denials and fees."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from healthmail.tenants.models import TenantOwnedModel

_USER = settings.AUTH_USER_MODEL


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
