"""Tenants, their Business Associate Agreements, and the base class of every tenant-owned model."""

import uuid
import zoneinfo
from typing import TypeVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"Unknown time zone: {value}")


class Tenant(models.Model):
    """An organization. Holds no PHI, so the table itself is not under row-level security."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    postal_address = models.TextField(help_text="Physical postal address for the CAN-SPAM footer.")
    timezone = models.CharField(max_length=64, default="America/New_York", validators=[validate_timezone])
    idle_timeout_minutes = models.PositiveSmallIntegerField(
        default=15, validators=[MinValueValidator(1), MaxValueValidator(60)]
    )
    # The disclosure policy's parameters for this tenant (healthmail/disclosure.py, docs/privacy.md):
    # empty means the platform default; a tenant may be stricter than the platform, never looser.
    disclosure_k = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(2), MaxValueValidator(1000)]
    )
    disclosure_rounding_base = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    disclosure_budget = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(100000)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


_M = TypeVar("_M", bound=models.Model)


class TenantQuerySet(models.QuerySet[_M]):
    def for_tenant(self, tenant: "Tenant | uuid.UUID | str") -> "TenantQuerySet[_M]":
        return self.filter(tenant=tenant)


class TenantOwnedModel(models.Model):
    """Base of every tenant-owned table: a non-null tenant FK, reached through `for_tenant()`.

    Its migration must apply `EnableRowLevelSecurity`; tests/isolation checks every subclass.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


class Service(models.TextChoices):
    """What a BAA can cover; each PHI flow names the service it uses."""

    TRANSACTIONAL_EMAIL = "transactional_email", "Transactional email"
    MARKETING_EMAIL = "marketing_email", "Marketing email"
    SECURE_PORTAL = "secure_portal", "Secure portal"
    FORMS = "forms", "Forms"


class BusinessAssociateAgreement(TenantOwnedModel):
    """One signed BAA. A renewal is a new row; the newest effective one governs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    counterparty = models.CharField(max_length=200, help_text="The covered entity signing with us.")
    signed_on = models.DateField()
    effective_on = models.DateField()
    expires_on = models.DateField(null=True, blank=True, help_text="Empty: until terminated.")
    signatory_name = models.CharField(max_length=200)
    signatory_title = models.CharField(max_length=200, blank=True)
    document_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the signed document file.")
    services = ArrayField(models.CharField(max_length=32, choices=Service.choices))
    breach_notification_days = models.PositiveSmallIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(60)]
    )
    terminated_on = models.DateField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-effective_on", "-recorded_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(effective_on__gte=models.F("signed_on")), name="baa_effective_after_signed"
            ),
            models.CheckConstraint(
                condition=models.Q(expires_on__isnull=True)
                | models.Q(expires_on__gt=models.F("effective_on")),
                name="baa_expires_after_effective",
            ),
            models.CheckConstraint(
                condition=models.Q(document_sha256__regex=r"^[0-9a-f]{64}$"), name="baa_document_sha256_hex"
            ),
        ]

    def __str__(self) -> str:
        return f"BAA with {self.counterparty} from {self.effective_on}"


class Subcontractor(TenantOwnedModel):
    """A subcontractor that handles PHI under a BAA (hosting, relay, backup...)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    baa = models.ForeignKey(
        BusinessAssociateAgreement, on_delete=models.CASCADE, related_name="subcontractors"
    )
    name = models.CharField(max_length=200)
    service = models.CharField(max_length=200, help_text="What it does with PHI.")
    has_baa = models.BooleanField(default=True, help_text="A downstream BAA is in place.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
