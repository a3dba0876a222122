"""Writes of the FHIR interface's own tables. Domain writes go through the domain's services."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q

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


REQUEST_KIND = "fhir_communication_request"


@dataclass(frozen=True)
class RequestIdentifier:
    """A request identifier's index to store, its next index while an index-key rotation fills
    them in, and every index a stored record of it may hold (blind.py: chained kinds)."""

    index: bytes
    next_index: bytes | None
    lookup: list[bytes]


def request_identifier_index(tenant: Tenant, system: str, value: str) -> RequestIdentifier:
    text = f"{system}|{value}"
    index, next_index = blind.blind_index_pair(tenant, REQUEST_KIND, text)  # from one view of the stage
    return RequestIdentifier(index, next_index, blind.lookup(tenant, REQUEST_KIND, text))


def communication_request_find(
    *, tenant: Tenant, identifier: RequestIdentifier
) -> CommunicationRequestRecord | None:
    wanted = identifier.lookup
    with tenant_context(tenant):
        return (
            CommunicationRequestRecord.objects.for_tenant(tenant)
            .filter(Q(identifier_index__in=wanted) | Q(identifier_index_next__in=wanted))
            .select_related("message")
            .first()
        )
