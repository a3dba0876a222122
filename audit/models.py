"""The audit trail: one append-only table of security-relevant and PHI events.

Rows carry references (ids, prefixes, action names), never PHI values.
"""

from django.db import models
from django.utils import timezone

from healthmail.tenants.models import Tenant


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
