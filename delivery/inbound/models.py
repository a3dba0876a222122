"""What the world says about a tenant's sending, as opposed to its patients: policy and
authentication rejections, RFC 6591 authentication-failure reports and DMARC aggregate reports, and
the pauses they cause. Nothing here names a contact or an address."""

from __future__ import annotations

import uuid

from django.db import models

from healthmail.tenants.models import TenantOwnedModel


class SenderFeedback(TenantOwnedModel):
    """One report about a sender domain: the sender-domain health page is read from these rows."""

    class Kind(models.TextChoices):
        REJECTION = "rejection", "Rejected for the sender's policy or authentication"
        AUTH_FAILURE = "auth_failure", "Authentication failure report (RFC 6591)"
        AGGREGATE = "aggregate", "DMARC aggregate report"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sender_domain = models.ForeignKey(
        "delivery.SenderDomain", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    domain = models.CharField(max_length=253, help_text="The sender (author) domain reported on.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    cause = models.CharField(max_length=16, blank=True)  # dmarc | spf | dkim | reputation | blocklist | ...
    status = models.CharField(max_length=16, blank=True)  # enhanced status code of a rejection
    stream = models.CharField(max_length=16, blank=True)
    receiving_domain = models.CharField(max_length=253, blank=True)  # who refused (rejections)
    reporter = models.CharField(max_length=200, blank=True)  # aggregate: org_name
    report_id = models.CharField(max_length=200, blank=True)
    messages = models.PositiveIntegerField(default=1)
    failed = models.PositiveIntegerField(default=1)  # aggregate: messages without a DMARC pass
    period_begin = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)  # counts per source IP; never PHI
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["tenant", "domain", "received_at"], name="sender_feedback_domain"),
            models.Index(
                fields=["tenant", "stream", "receiving_domain", "received_at"],
                name="sender_feedback_rejections",
                condition=models.Q(kind="rejection"),
            ),
        ]
        constraints = [
            # A reporter sends the same aggregate report again (retries): counted once.
            models.UniqueConstraint(
                fields=["tenant", "reporter", "report_id", "domain"],
                name="sender_feedback_aggregate_once",
                condition=models.Q(kind="aggregate"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.domain}"


class DomainPause(TenantOwnedModel):
    """The tenant's stream to one receiving domain is held until `paused_until`: that domain kept
    refusing our mail for sender-side reasons, and more attempts would only hurt the reputation."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stream = models.CharField(max_length=16)
    receiving_domain = models.CharField(max_length=253)
    paused_until = models.DateTimeField()
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "stream", "receiving_domain"], name="domain_pause_one_per_stream"
            )
        ]

    def __str__(self) -> str:
        return f"{self.stream} to {self.receiving_domain} until {self.paused_until}"
