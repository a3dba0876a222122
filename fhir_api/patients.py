"""FHIR Patient ↔ contact. A Patient is parsed and validated by fhir.resources (R4B models, wire-
compatible with R4 for Patient), then mapped onto the contacts service's input: the same
normalization, encryption, blind indexes and audit as the REST API and the importer.

Mapped: identifier (→ external ids), the official (else first) name, the first email and phone,
birthDate, gender, the first address, the preferred communication language. Other elements are
accepted by the model and not stored (the CapabilityStatement says which are kept).
"""

from __future__ import annotations

from typing import Any, cast

from fhir.resources.R4B.patient import Patient

from contacts.normalize import SYSTEM_NAME, ContactInput
from healthmail.errors import ApplicationError
from healthmail.tenants.models import Tenant

from .services import NAME_PREFIX, identifier_system_name, identifier_system_uris

# The external-id systems contacts had before any FHIR write keep a URI of ours when read back.
LOCAL_SYSTEM = "urn:healthmail:external-id:"
# HL7 v3 ObservationValue: the resource was redacted (masked for a reader without contacts:phi).
REDACTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "REDACTED"}
_GENDERS = {"male", "female", "other", "unknown"}


class PatientInvalid(ApplicationError):
    status_code = 422
    title = "Patient not accepted"


def _name(patient: Patient) -> tuple[str | None, str | None]:
    names = patient.name or []
    chosen = next((n for n in names if n.use == "official"), names[0] if names else None)
    if chosen is None:
        return None, None
    given = " ".join(name for name in chosen.given or [] if name) or None
    return given, chosen.family


def _telecom(patient: Patient, system: str) -> str | None:
    values = [t.value for t in patient.telecom or [] if t.system == system and t.value]
    return values[0] if values else None


def _address(patient: Patient) -> dict[str, str] | None:
    addresses = patient.address or []
    if not addresses:
        return None
    found = addresses[0]
    lines = [line or "" for line in found.line or []]
    mapped = {
        "line1": lines[0] if lines else "",
        "line2": ", ".join(lines[1:]),
        "city": found.city or "",
        "state": found.state or "",
        "zip": found.postalCode or "",
    }
    return {key: value for key, value in mapped.items() if value}


def _language(patient: Patient) -> str | None:
    communications = patient.communication or []
    chosen = next((c for c in communications if c.preferred), communications[0] if communications else None)
    if chosen is None or not chosen.language.coding:
        return None
    return chosen.language.coding[0].code


def _system_name(tenant: Tenant, uri: str) -> str:
    """The external-id system of an identifier system URI: one of ours read back (LOCAL_SYSTEM +
    a system name contacts already use, so a read-modify-write keeps it), else a FHIR system,
    registered as needed."""
    local = uri.removeprefix(LOCAL_SYSTEM)
    if local != uri and SYSTEM_NAME.fullmatch(local) and not local.startswith(NAME_PREFIX):
        return local
    return cast(str, identifier_system_name(tenant=tenant, uri=uri, create=True))  # create: never None


# The contact fields a Patient update (PUT) replaces: every one this module maps. A Patient
# without an element clears what the contact held for it.
REPLACED = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "postal_address",
    "birth_date",
    "external_ids",
    "demographics.gender",
    "demographics.preferred_language",
)


def patient_input(*, tenant: Tenant, patient: Patient) -> ContactInput:
    """The contacts service's input for a Patient; identifier systems are registered as needed."""
    external_ids: dict[str, str] = {}
    for index, identifier in enumerate(patient.identifier or []):
        if not identifier.system or not identifier.value:
            raise PatientInvalid(
                "Every identifier needs a system and a value.",
                code="identifier_invalid",
                extra={"errors": {f"identifier[{index}]": ["needs a system and a value"]}},
            )
        external_ids[_system_name(tenant, identifier.system)] = identifier.value
    email = _telecom(patient, "email")
    if not email and not external_ids:
        raise PatientInvalid(
            "A Patient needs an identifier or an email telecom.",
            code="identifier_required",
            extra={"errors": {"identifier": ["give an identifier or an email telecom"]}},
        )
    first_name, last_name = _name(patient)
    demographics: dict[str, str | None] = {}
    if patient.gender:
        demographics["gender"] = patient.gender
    language = _language(patient)
    if language:
        demographics["preferred_language"] = language
    return ContactInput(
        email=email,
        first_name=first_name,
        last_name=last_name,
        phone=_telecom(patient, "phone"),
        postal_address=_address(patient),
        birth_date=patient.birthDate.isoformat() if patient.birthDate else None,
        external_ids=external_ids or None,
        demographics=demographics or None,
    )


def _identifiers(tenant: Tenant, external_ids: dict[str, str]) -> list[dict[str, str]]:
    uris = identifier_system_uris(tenant=tenant, names=list(external_ids))
    return [
        {"system": uris.get(name, f"{LOCAL_SYSTEM}{name}"), "value": value}
        for name, value in sorted(external_ids.items())
    ]


def patient_resource(*, tenant: Tenant, record: dict[str, Any]) -> dict[str, Any]:
    """A Patient from a contact record as `contacts.selectors.contact_records` shaped it for this
    reader: unmasked, or masked (names as hints, no identifiers, tagged REDACTED)."""
    resource: dict[str, Any] = {"resourceType": "Patient", "id": str(record["id"]), "active": True}
    demographics = record.get("demographics") or {}
    gender = (demographics.get("gender") or "").lower()
    if gender in _GENDERS:
        resource["gender"] = gender
    if record["masked"]:
        resource["meta"] = {"security": [REDACTED]}
        if record["name"]:
            resource["name"] = [{"text": record["name"]}]
        if record["email"]:
            resource["telecom"] = [{"system": "email", "value": record["email"]}]
        if record.get("state"):
            resource["address"] = [{"state": record["state"]}]
        return resource
    if record.get("updated_at") is not None:
        resource["meta"] = {"lastUpdated": record["updated_at"].isoformat()}
    if record.get("external_ids"):
        resource["identifier"] = _identifiers(tenant, record["external_ids"])
    name: dict[str, Any] = {"use": "official"}
    if record.get("last_name"):
        name["family"] = record["last_name"]
    if record.get("first_name"):
        name["given"] = record["first_name"].split()
    if len(name) > 1:
        resource["name"] = [name]
    telecom = [
        {"system": system, "value": record[key]}
        for system, key in (("email", "email"), ("phone", "phone"))
        if record.get(key)
    ]
    if telecom:
        resource["telecom"] = telecom
    if record.get("birth_date"):
        resource["birthDate"] = str(record["birth_date"])
    address = record.get("postal_address") or {}
    if address:
        lines = [address[key] for key in ("line1", "line2") if address.get(key)]
        mapped = {
            "line": lines,
            "city": address.get("city"),
            "state": address.get("state"),
            "postalCode": address.get("zip"),
        }
        resource["address"] = [{key: value for key, value in mapped.items() if value}]
    language = demographics.get("preferred_language")
    if language:
        resource["communication"] = [{"language": {"coding": [{"code": language}]}, "preferred": True}]
    return resource
