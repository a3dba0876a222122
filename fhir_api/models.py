"""What the FHIR interface remembers beyond the domain's own tables: the identifier systems an EHR
names patients with, and which CommunicationRequest became which message."""

from __future__ import annotations

import uuid

from django.db import models

from healthmail.tenants.models import TenantOwnedModel


class IdentifierSystem(TenantOwnedModel):
    """A FHIR identifier system (a URI such as an MRN's OID) and the short external-id system name
    contacts store it under (`fhir.<hash>`): contacts keep 32-character system names, FHIR uses URIs.
    A system URI names an assigning authority, not a person: not PHI."""

    id = models.BigAutoField(primary_key=True)
    uri = models.CharField(max_length=500)
    name = models.CharField(max_length=32)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "uri"], name="fhir_identifier_system_uri_unique"),
            models.UniqueConstraint(fields=["tenant", "name"], name="fhir_identifier_system_name_unique"),
        ]

    def __str__(self) -> str:
        return self.uri


class CommunicationRequestRecord(TenantOwnedModel):
    """One accepted CommunicationRequest: its id is the FHIR resource id, its message the outbox row.
    The request's business identifier is kept only as a keyed hash (it may be an order number), and
    is unique per tenant, so a retried request finds the first one's message instead of a second."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    identifier_index = models.BinaryField(null=True, blank=True)
    identifier_index_next = models.BinaryField(null=True, blank=True)  # see crypto/index_rotation.py
    message = models.ForeignKey("delivery.Message", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "identifier_index"], name="fhir_communication_request_identifier_unique"
            ),
            models.UniqueConstraint(
                fields=["tenant", "message"], name="fhir_communication_request_message_unique"
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)
