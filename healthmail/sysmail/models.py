"""The durable outbox for system mail to staff: invitations, security alerts, hold notices, reply notices.
(Mail to patients never comes here: it leaves from the tenant's domain through the delivery engine.)

One row per recipient, written in the same transaction as the business write it announces, so that
write never depends on the mail server and no announced event is lost. The address and the content are
sealed with the tenant's data key (an invitation carries a password link) and wiped once the row
reaches a final state.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

from healthmail.crypto.fields import EncryptedJSONField, EncryptedTextField, PhiClass
from healthmail.tenants.models import TenantOwnedModel


class SystemMail(TenantOwnedModel):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Retrying"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    break_glass_target = False  # a queue, not a patient record: nothing a person opens in an emergency

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # What the mail is about, chosen by the sending app ("audit.alert", "retention.hold_notice"...);
    # source_ids name the objects it announces, so their pages can show the delivery status.
    topic = models.CharField(max_length=64)
    source_ids = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    # Set for staff recipients (shown on status pages); patients are known by the sealed address only.
    recipient_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_address = EncryptedTextField(phi_class=PhiClass.IDENTIFIER, null=True)
    content = EncryptedJSONField(phi_class=PhiClass.CONTENT, null=True)  # {"subject": ..., "body": ...}
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # A reason without PHI: an SMTP reply code or an exception class, never the server's text.
    last_error = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["tenant", "next_attempt_at"],
                name="sysmail_due",
                condition=models.Q(state__in=["queued", "retrying", "sending"]),
            ),
            GinIndex(fields=["source_ids"], name="sysmail_sources"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=["sent", "failed"]) | models.Q(content__isnull=False),
                name="sysmail_content_until_final",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic} mail ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in (self.State.SENT, self.State.FAILED)
