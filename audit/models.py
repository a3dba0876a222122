"""The audit trail: one append-only table of security-relevant and PHI events.

Rows carry references (ids, prefixes, action names), never PHI values.
"""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

from healthmail.tenants.models import Tenant, TenantOwnedModel


class AuditEvent(models.Model):
    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        DENIED = "denied", "Denied"
        FAILURE = "failure", "Failure"

    id = models.BigAutoField(primary_key=True)
    # Null for platform-level events (tenant created, login of an unknown address).
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    occurred_at = models.DateTimeField(default=timezone.now)
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    reason = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)
    # Every contact (patient) the event concerns: each one a PHI read touched, or the contact it acted
    # on. Indexed (GIN), so "every access to this patient" is one query; chained with the row.
    contact_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # Set once by the sealer (chain.py); a trigger refuses every other change, and any delete.
    seq = models.BigIntegerField(null=True, blank=True)
    hash = models.CharField(max_length=64, blank=True, default="")
    sealed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "seq"], name="audit_seq_unique_per_tenant", nulls_distinct=True
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "id"], condition=models.Q(seq__isnull=True), name="audit_unsealed"
            ),
            models.Index(fields=["tenant", "occurred_at"]),
            models.Index(fields=["tenant", "action", "occurred_at"]),
            models.Index(fields=["tenant", "actor_type", "actor_id"]),
            GinIndex(fields=["contact_ids"], name="audit_contact_ids"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.outcome}"


class ChainHead(models.Model):
    """The newest sealed link of one tenant's chain (tenant NULL: the platform chain)."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.OneToOneField(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="chain_head_one_per_tenant", nulls_distinct=False)
        ]

    def __str__(self) -> str:
        return f"chain head {self.seq}"


class ChainVerification(models.Model):
    """The result of the last verification of one chain, for the status banner."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    verified_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    rows = models.BigIntegerField()
    problem = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-verified_at"]

    def __str__(self) -> str:
        return f"verification {'ok' if self.ok else 'BROKEN'}"


class Alert(TenantOwnedModel):
    """A rule over the audit stream fired; compliance officers are told in-app and by email."""

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    rule = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    summary = models.CharField(max_length=300)
    event_ids = ArrayField(models.BigIntegerField(), default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.summary


class AlertScan(TenantOwnedModel):
    """How far the alert rules have read each tenant's audit stream."""

    last_seq = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="alert_scan_one_per_tenant")]

    def __str__(self) -> str:
        return f"alert scan at seq {self.last_seq}"


class BreakGlassGrant(TenantOwnedModel):
    """Emergency access to one record a person normally can't see: reason required, time-limited,
    every action under it flagged, compliance officers alerted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    reason = models.CharField(max_length=500)
    opened_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("opened_at")),
                name="break_glass_expires_after_opening",
            ),
        ]

    def __str__(self) -> str:
        return f"break-glass {self.target_type}:{self.target_id}"

    @property
    def is_active(self) -> bool:
        return self.closed_at is None and self.expires_at > timezone.now()


class AuditPolicy(TenantOwnedModel):
    """Who may review a tenant's audit trail, and how long it is kept."""

    LEGAL_MINIMUM_YEARS = 6  # HIPAA 45 CFR 164.316(b)(2)(i): documentation kept six years

    reviewer_roles = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    retention_years = models.PositiveSmallIntegerField(default=LEGAL_MINIMUM_YEARS)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="audit_policy_one_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(retention_years__gte=6), name="audit_retention_legal_minimum"
            ),
        ]

    def __str__(self) -> str:
        return f"audit policy ({self.retention_years} years)"
