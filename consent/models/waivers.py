"""A patient's waiver of encryption (unencrypted email at their own request), its history and checks."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from contacts.models import Contact
from healthmail.crypto.fields import EncryptedTextField, PhiClass
from healthmail.tenants.models import TenantOwnedModel

from .common import Evidence, Purpose
from .marketing import ConsentText


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
