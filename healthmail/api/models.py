"""Idempotency records: the first answer to a POST carrying an Idempotency-Key, kept 24 hours."""

from django.db import models

from healthmail.tenants.models import TenantOwnedModel


class IdempotencyRecord(TenantOwnedModel):
    """One per (tenant, API key, Idempotency-Key). No request body is stored, only a keyed hash of it.
    The response body is the endpoint's own answer: an endpoint that answers with PHI must not be
    made idempotent until this column is encrypted."""

    id = models.BigAutoField(primary_key=True)
    api_key_prefix = models.CharField(max_length=16)
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(
        max_length=64, help_text="HMAC-SHA256 of method, path and canonical body."
    )
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "api_key_prefix", "key"], name="idempotency_key_unique"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "created_at"], name="idempotency_expiry")]

    def __str__(self) -> str:
        return f"{self.api_key_prefix}:{self.key}"
