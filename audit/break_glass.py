"""Break-glass: emergency access to one record, for a reason, for a short time, loudly.

Opening a grant is audited (the alert rules turn it into a critical alert for every compliance
officer of the tenant); every PHI read under it carries the grant id in its audit event.
"""

from __future__ import annotations

import datetime

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from healthmail.accounts.roles import role_can
from healthmail.actors import Actor
from healthmail.crypto.fields import EncryptedFieldMixin
from healthmail.errors import ApplicationError, NotFound, PermissionRefused
from healthmail.tenants.context import tenant_context

from . import services
from .models import BreakGlassGrant

MAX_MINUTES = 60
MIN_REASON_LENGTH = 15


def break_glass_targets() -> dict[str, type[models.Model]]:
    """Models that hold encrypted PHI: the records break-glass can open."""
    return {
        model._meta.label_lower: model
        for model in apps.get_models()
        if any(isinstance(f, EncryptedFieldMixin) for f in model._meta.concrete_fields)
        and getattr(model, "break_glass_target", True)  # e.g. the system-mail outbox: no record to read
    }


@transaction.atomic
def break_glass_open(
    *, user, role: str, tenant, target_type: str, target_id: str, reason: str, minutes: int = 30
) -> BreakGlassGrant:
    if not role_can(role, "break_glass.open"):
        raise PermissionRefused(
            "Only compliance officers and clinical reviewers can open break-glass access."
        )
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ApplicationError(
            f"Explain the emergency (at least {MIN_REASON_LENGTH} characters).", code="reason"
        )
    if not 1 <= minutes <= MAX_MINUTES:
        raise ApplicationError(f"Access can last 1 to {MAX_MINUTES} minutes.", code="minutes")
    model = break_glass_targets().get(target_type)
    if model is None:
        raise ApplicationError("Unknown kind of record.", code="target_type")
    with tenant_context(tenant):
        if not _valid_pk(model, target_id) or not model._default_manager.filter(pk=target_id).exists():
            raise NotFound("No such record in this organization.")
        now = timezone.now()
        grant = BreakGlassGrant.objects.create(
            tenant=tenant,
            user=user,
            target_type=target_type,
            target_id=str(target_id),
            reason=reason.strip(),
            opened_at=now,
            expires_at=now + datetime.timedelta(minutes=minutes),
        )
        services.record(
            actor=Actor.for_user(user),
            action="break_glass.open",
            target=(target_type, target_id),
            tenant=tenant,
            reason=reason.strip(),
            details={"grant": str(grant.pk), "minutes": minutes, "break_glass": str(grant.pk)},
        )
    return grant


def _valid_pk(model, value: str) -> bool:
    try:
        model._meta.pk.to_python(value)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


def break_glass_active(*, user, tenant, target_type: str, target_id: str) -> BreakGlassGrant | None:
    with tenant_context(tenant):
        return BreakGlassGrant.objects.filter(
            tenant=tenant,
            user=user,
            target_type=target_type,
            target_id=str(target_id),
            closed_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).first()


@transaction.atomic
def break_glass_close(*, user, tenant, grant: BreakGlassGrant) -> BreakGlassGrant:
    with tenant_context(tenant):
        updated = BreakGlassGrant.objects.filter(pk=grant.pk, user=user, closed_at__isnull=True).update(
            closed_at=timezone.now()
        )
        if updated:
            services.record(
                actor=Actor.for_user(user),
                action="break_glass.close",
                target=grant,
                tenant=tenant,
                details={"grant": str(grant.pk), "break_glass": str(grant.pk)},
            )
        grant.refresh_from_db()
    return grant
