"""FHIR Consent → a marketing consent change (grant or revoke of a topic), through the consent service.

Mapped: `patient` (Patient/<id>), `provision.type` (permit → grant, deny → revoke), the topic as a
category coded in our consent-topic code system (the topic keys of the preference center), the time
the person decided (`dateTime`) and where the evidence comes from (an extension, default `api`).
Each recorded change reads back as one Consent (its id is the event's): active while it is the
person's current decision for the topic, inactive once a later one replaced it. HIPAA
authorizations are Consents too (fhir_api/authorizations.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir.resources.R4B.consent import Consent

from consent.models import ConsentEvent, Source
from healthmail.errors import ApplicationError

from .patients import REDACTED

TOPIC_SYSTEM = "https://healthmail.example/fhir/CodeSystem/consent-topic"
SOURCE_EXTENSION = "https://healthmail.example/fhir/StructureDefinition/consent-evidence-source"
SOURCES = [source for source in Source.values if source != Source.SYSTEM]
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"


class ConsentInvalid(ApplicationError):
    status_code = 422
    title = "Consent not accepted"


def _refuse(message: str, code: str, field: str) -> ConsentInvalid:
    return ConsentInvalid(message, code=code, extra={"errors": {field: [message]}})


def consent_change(consent: Consent) -> dict[str, Any]:
    """contact_id, topic, kind, source, occurred_at of a Consent, or ConsentInvalid saying why not."""
    if consent.status != "active":
        raise _refuse("Record a decision as an active Consent.", "status_not_active", "status")
    reference = consent.patient.reference if consent.patient is not None else None
    kind, _, found = (reference or "").partition("/")
    try:
        contact_id = uuid.UUID(found) if kind == "Patient" else None
    except ValueError:
        contact_id = None
    if contact_id is None:
        raise _refuse("Name the patient: patient.reference Patient/<id>.", "patient_required", "patient")
    topics = [
        coding.code
        for category in consent.category or []
        for coding in category.coding or []
        if coding.system == TOPIC_SYSTEM and coding.code
    ]
    if len(topics) != 1:
        raise _refuse(f"Give exactly one category coded in {TOPIC_SYSTEM}.", "topic_required", "category")
    provision = consent.provision.type if consent.provision is not None else None
    if provision not in ("permit", "deny"):
        raise _refuse("provision.type must be permit or deny.", "provision_required", "provision.type")
    sources = [e.valueCode for e in consent.extension or [] if e.url == SOURCE_EXTENSION]
    source = sources[0] if sources else Source.API
    if source not in SOURCES:
        raise _refuse(f"The evidence source is one of {', '.join(SOURCES)}.", "source_invalid", "extension")
    return {
        "contact_id": contact_id,
        "topic": topics[0],
        "kind": ConsentEvent.Kind.GRANTED if provision == "permit" else ConsentEvent.Kind.REVOKED,
        "source": source,
        "occurred_at": consent.dateTime,
    }


def consent_event_resource(*, event: ConsentEvent, current: bool, masked: bool) -> dict[str, Any]:
    """One recorded marketing decision as a Consent. Masked: without the moment it was made."""
    granted = event.kind == ConsentEvent.Kind.GRANTED
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": str(event.pk),
        "status": "active" if current and event.kind != ConsentEvent.Kind.EXPIRED else "inactive",
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": TOPIC_SYSTEM, "code": event.topic.key}]}],
        "patient": {"reference": f"Patient/{event.contact_id}"},
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN" if granted else "OPTOUT"}]},
        # An expired opt-in was a permit that no longer holds: its status is inactive.
        "provision": {"type": "deny" if event.kind == ConsentEvent.Kind.REVOKED else "permit"},
        "extension": [{"url": SOURCE_EXTENSION, "valueCode": event.source}],
    }
    if masked:
        resource["meta"] = {"security": [REDACTED]}
    else:
        resource["dateTime"] = event.occurred_at.isoformat()
    return resource
