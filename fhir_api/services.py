"""Writes of the FHIR interface's own tables. Domain writes go through the domain's services."""

from __future__ import annotations

import hashlib

from django.db import IntegrityError, transaction

from healthmail.crypto import blind
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import CommunicationRequestRecord, IdentifierSystem

NAME_PREFIX = "fhir."


def identifier_system_name(*, tenant: Tenant, uri: str, create: bool) -> str | None:
    """The contacts' external-id system name of a FHIR identifier system; None when unknown and
    not to be created (a search by an identifier no write ever used finds nobody)."""
    with tenant_context(tenant):
        found = (
            IdentifierSystem.objects.for_tenant(tenant).filter(uri=uri).values_list("name", flat=True).first()
        )
        if found is not None or not create:
            return found
        name = NAME_PREFIX + hashlib.sha256(uri.encode()).hexdigest()[:24]
        try:
            with transaction.atomic():
                IdentifierSystem.objects.create(tenant=tenant, uri=uri, name=name)
        except IntegrityError:  # a concurrent write registered it first
            pass
    return name


def identifier_system_uris(*, tenant: Tenant, names: list[str]) -> dict[str, str]:
    with tenant_context(tenant):
        return dict(
            IdentifierSystem.objects.for_tenant(tenant).filter(name__in=names).values_list("name", "uri")
        )


def request_identifier_index(tenant: Tenant, system: str, value: str) -> bytes:
    return blind.blind_index(tenant, "fhir_communication_request", f"{system}|{value}")


def communication_request_find(
    *, tenant: Tenant, identifier_index: bytes
) -> CommunicationRequestRecord | None:
    with tenant_context(tenant):
        return (
            CommunicationRequestRecord.objects.for_tenant(tenant)
            .filter(identifier_index=identifier_index)
            .select_related("message")
            .first()
        )
