"""People, their memberships in tenants, and API keys."""

import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from healthmail.tenants.models import TenantOwnedModel

from .roles import Role


class EmailUserManager(UserManager["User"]):
    # The email is the login, so there is no username to give: Django's UserManager takes one first.
    def create_user(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra: Any
    ) -> "User":
        return super().create_user(username=email.lower(), email=email.lower(), password=password, **extra)


class User(AbstractUser):
    """A staff person. Email is the login. Not tenant-owned: one person may belong to several."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    is_platform_admin = models.BooleanField(default=False)

    objects: ClassVar[EmailUserManager] = EmailUserManager()

    REQUIRED_FIELDS = ["email"]

    if TYPE_CHECKING:
        # Installed on request.user by django_otp's OTPMiddleware: has this session passed MFA?
        def is_verified(self) -> bool: ...

    def __str__(self) -> str:
        return self.email or self.username


class Membership(TenantOwnedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} as {self.role}"


class ApiKey(TenantOwnedModel):
    """An API credential. Only a SHA-256 of the secret is stored; the key is shown once.

    The key has 256 bits of entropy, so a fast hash is safe here (no dictionary to attack)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=32), default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    # Set on the access tokens of SMART clients: short-lived keys the token endpoint issues.
    smart_client = models.ForeignKey(
        "accounts.SmartClient", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class SmartClient(TenantOwnedModel):
    """A system registered for SMART Backend Services: it proves who it is with a JWT signed by a key
    of its JWKS (private_key_jwt) and gets short-lived access tokens, which are API keys of their own
    (`ApiKey.smart_client`). Only public keys are stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    jwks = models.JSONField(help_text="The client's public keys (a JWK Set; for a URL, the last fetched).")
    jwks_url = models.URLField(
        max_length=2000, blank=True, default="", help_text="Where the keys are published."
    )
    jwks_fetched_at = models.DateTimeField(null=True, blank=True, help_text="Last successful fetch.")
    jwks_attempted_at = models.DateTimeField(null=True, blank=True, help_text="Last fetch tried.")
    scopes = ArrayField(
        models.CharField(max_length=32), default=list, help_text="The most its tokens may carry."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"


class SmartAssertionUse(TenantOwnedModel):
    """A client assertion's `jti`, kept until the assertion expires: a second use is a replay. The
    unique constraint refuses it even when two token requests race."""

    id = models.BigAutoField(primary_key=True)
    client = models.ForeignKey(SmartClient, on_delete=models.CASCADE, related_name="+")
    jti = models.CharField(max_length=255)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "client", "jti"], name="smart_assertion_jti_unique")
        ]
        indexes = [models.Index(fields=["tenant", "expires_at"], name="smart_assertion_expiry")]

    def __str__(self) -> str:
        return self.jti
