"""Wrapped keys. Plaintext keys never touch the database: each row holds a key sealed by the key
above it (tenant data keys by the master key, object keys by the tenant's data key)."""

import uuid

from django.db import models

from healthmail.tenants.models import TenantOwnedModel


class TenantKey(TenantOwnedModel):
    class Purpose(models.TextChoices):
        DATA = "data", "Encrypts PHI fields"
        INDEX = "index", "Keys blind indexes and tokens"
        CHAIN = "chain", "Re-keys stored indexes of kinds kept only as an index (blind.py)"

    purpose = models.CharField(max_length=8, choices=Purpose.choices)
    version = models.PositiveIntegerField()
    master_key_id = models.CharField(max_length=32, help_text="Which master key wraps this key.")
    root_key = models.ForeignKey(
        "crypto.TenantRootKey",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The tenant key (in the key store) wrapping this key with the master key; "
        "empty: the master key alone (keys made before tenant keys existed).",
    )
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class LookupState(models.TextChoices):
        PENDING = "pending", "Looked up, not yet written (an index-key rotation is starting)"
        ACTIVE = "active", "Written and looked up"
        RETIRED = "retired", "Neither (re-indexing done); kept only where index_rotation.py says"

    lookup_state = models.CharField(
        max_length=8,
        choices=LookupState.choices,
        default=LookupState.ACTIVE,
        help_text="Index keys only (blind.py): how lookups and writes use this version.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "purpose", "version"], name="tenant_key_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.purpose} key v{self.version}"


class ObjectKey(TenantOwnedModel):
    """A key for one object's content (a message body, a portal message), wrapped by an epoch key
    (objects.py). Deleting it shreds the content: the ciphertext stays behind but nothing can
    decrypt it again, and once its epoch key is destroyed, neither can a copy from a backup."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    epoch = models.ForeignKey(
        "crypto.EpochKey",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The epoch key wrapping this key; empty: wrapped by the tenant's data key (older keys).",
    )
    data_key_version = models.PositiveIntegerField(help_text="0 when wrapped by an epoch key.")
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"object key {self.pk}"


class SigningKey(TenantOwnedModel):
    """A tenant's Ed25519 key for what outsiders must be able to check: audit chain heads, audit
    exports, destruction certificates, evidence packages. The private key is sealed by the tenant's
    data key; the public key is published. Rotation retires a key and never deletes it, so every
    signature it made stays checkable."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    fingerprint = models.CharField(
        max_length=32, help_text="SHA-256 of the public key, first 12 bytes (hex)."
    )
    public_key = models.CharField(max_length=64, help_text="The raw 32-byte Ed25519 public key (hex).")
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "fingerprint"], name="signing_key_fingerprint_unique")
        ]

    def __str__(self) -> str:
        return f"signing key {self.fingerprint}"

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.fingerprint}"


class EpochKey(TenantOwnedModel):
    """A key in the key store (outside the database and its backups) that wraps object keys made
    or re-wrapped during its epoch. Destroying it after every live object key has moved to a newer
    epoch is what makes a shredded object unrecoverable from earlier database backups."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True, help_text="No longer wraps new keys.")
    destroyed_at = models.DateTimeField(null=True, blank=True, help_text="Deleted from the key store.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(retired_at__isnull=True), name="epoch_key_one_current"
            )
        ]

    def __str__(self) -> str:
        return f"epoch key {self.pk}"


class TenantRootKey(TenantOwnedModel):
    """The tenant's own key, held in the key store (outside the database and its backups; the
    place a customer's KMS would hold it). With the master key it wraps the tenant's data and index
    keys, so destroying it shreds the whole tenant, in every backup too (keys.py, shredding.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    destroyed_at = models.DateTimeField(null=True, blank=True, help_text="Deleted from the key store.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(destroyed_at__isnull=True),
                name="tenant_root_key_one_live",
            )
        ]

    def __str__(self) -> str:
        return f"tenant key {self.pk}"


class KeyUsage(TenantOwnedModel):
    """Values a data-key version encrypted, one row per batch of counts (usage.py). Appended, never
    updated: concurrent writers never wait on each other's counts."""

    id = models.BigAutoField(primary_key=True)
    version = models.PositiveIntegerField()
    encryptions = models.PositiveIntegerField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "version"], name="key_usage_version")]

    def __str__(self) -> str:
        return f"{self.encryptions} encryptions under data key v{self.version}"
