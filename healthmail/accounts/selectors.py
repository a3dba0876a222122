"""Reads for the tenant-admin pages. Every lookup is by tenant first: a foreign id is 'not found'."""

from __future__ import annotations

import uuid

from django.db.models import Exists, OuterRef, QuerySet
from django_otp.plugins.otp_totp.models import TOTPDevice

from healthmail.errors import NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import ApiKey, Membership, SmartClient


def _with_mfa_flag(queryset: QuerySet[Membership]) -> QuerySet[Membership]:
    return queryset.select_related("user").annotate(
        mfa_enrolled=Exists(TOTPDevice.objects.filter(user=OuterRef("user"), confirmed=True))
    )


def member_list(*, tenant: Tenant) -> list[Membership]:
    with tenant_context(tenant):
        memberships = Membership.objects.for_tenant(tenant)
        return list(_with_mfa_flag(memberships).order_by("-is_active", "user__email"))


def member_get(*, tenant: Tenant, membership_id: uuid.UUID) -> Membership:
    with tenant_context(tenant):
        membership = _with_mfa_flag(Membership.objects.for_tenant(tenant)).filter(pk=membership_id).first()
    if membership is None:
        raise NotFound("No such member in this organization.")
    return membership


def api_key_list(*, tenant: Tenant) -> list[ApiKey]:
    with tenant_context(tenant):
        # SMART access tokens are API keys too, minted per request: the page lists the keys people made.
        return list(
            ApiKey.objects.for_tenant(tenant).filter(smart_client__isnull=True).select_related("created_by")
        )


def api_key_get(*, tenant: Tenant, api_key_id: uuid.UUID) -> ApiKey:
    with tenant_context(tenant):
        api_key = ApiKey.objects.for_tenant(tenant).filter(pk=api_key_id).first()
    if api_key is None:
        raise NotFound("No such API key in this organization.")
    return api_key


def smart_client_list(*, tenant: Tenant) -> list[SmartClient]:
    with tenant_context(tenant):
        return list(SmartClient.objects.for_tenant(tenant).select_related("created_by"))


def smart_client_get(*, tenant: Tenant, smart_client_id: uuid.UUID) -> SmartClient:
    with tenant_context(tenant):
        client = SmartClient.objects.for_tenant(tenant).filter(pk=smart_client_id).first()
    if client is None:
        raise NotFound("No such SMART client in this organization.")
    return client
