"""Suppressed addresses and the tenant's consent settings."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from contacts.models import Contact
from healthmail.tenants.models import TenantOwnedModel


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
