"""The CapabilityStatement (`GET metadata`): what this server does, and how a client authorizes."""

from __future__ import annotations

from typing import Any

from healthmail.accounts.smart import ALGORITHMS, RESOURCE_SCOPES

FHIR_VERSION = "4.0.1"
# When this statement last changed (CapabilityStatement.date is required).
STATEMENT_DATE = "2026-12-07"
SMART_SECURITY = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}
    ]
}


def _resource(kind: str, interactions: list[str], params: list[tuple[str, str]], doc: str, **extra) -> dict:
    found: dict[str, Any] = {
        "type": kind,
        "interaction": [{"code": code} for code in interactions],
        "documentation": doc,
        **extra,
    }
    if params:
        found["searchParam"] = [{"name": name, "type": kind_} for name, kind_ in params]
    return found


def capability_statement(*, base_url: str, token_url: str) -> dict:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": STATEMENT_DATE,
        "publisher": "HealthMail",
        "kind": "instance",
        "implementation": {"description": "HealthMail FHIR R4 interface", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Static API keys or SMART Backend Services access tokens (Bearer).",
                "security": {
                    "service": [SMART_SECURITY],
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [{"url": "token", "valueUri": token_url}],
                        }
                    ],
                },
                "resource": [
                    _resource(
                        "Patient",
                        ["create", "read", "update", "search-type"],
                        [("identifier", "token"), ("email", "token")],
                        "create is an upsert by identifier, else by email telecom (contacts); update "
                        "replaces every mapped element of an existing Patient (no If-Match: Patients "
                        "carry no version).",
                        conditionalCreate=True,
                        updateCreate=False,
                        versioning="no-version",
                    ),
                    _resource(
                        "CommunicationRequest",
                        ["create"],
                        [],
                        "Sends one transactional message; idempotent by identifier.",
                        conditionalCreate=True,
                    ),
                    _resource(
                        "Communication",
                        ["read", "search-type"],
                        [("based-on", "reference")],
                        "Status and delivery evidence of a message.",
                    ),
                    _resource(
                        "Consent",
                        ["create", "read", "update", "search-type"],
                        [("patient", "reference"), ("category", "token")],
                        "Marketing decisions (a topic's permit or deny) and HIPAA authorizations "
                        "(policyRule consentpolicycodes hipaa-auth or hipaa-research, 45 CFR 164.508). "
                        "An update only revokes an authorization (status inactive). Search needs patient.",
                    ),
                ],
            }
        ],
    }


def smart_configuration(*, token_url: str) -> dict:
    """`.well-known/smart-configuration` for backend services (SMART App Launch 2.x)."""
    return {
        "token_endpoint": token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ALGORITHMS,
        "scopes_supported": sorted(
            f"system/{resource}.{letter}"
            for resource, letters in RESOURCE_SCOPES.items()
            for letter in letters
        ),
        "capabilities": ["client-confidential-asymmetric"],
    }
