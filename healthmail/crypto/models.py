"""Wrapped keys. Plaintext keys never touch the database: each row holds a key sealed by the key
above it (tenant data keys by the master key, object keys by the tenant's data key)."""

import uuid

from django.db import models

from healthmail.tenants.models import TenantOwnedModel


class TenantKey(TenantOwnedModel):
    class Purpose(models.TextChoices):
        DATA = "data", "Encrypts PHI fields"
        INDEX = "index", "Keys blind indexes and tokens"

    purpose = models.CharField(max_length=8, choices=Purpose.choices)
    version = models.PositiveIntegerField()
    master_key_id = models.CharField(max_length=32, help_text="Which master key wraps this key.")
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "purpose", "version"], name="tenant_key_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.purpose} key v{self.version}"


class ObjectKey(TenantOwnedModel):
    """A key for one object's content (a message body, a portal message). Deleting it shreds the
    content: the ciphertext stays behind but nothing can ever decrypt it again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    data_key_version = models.PositiveIntegerField()
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"object key {self.pk}"
