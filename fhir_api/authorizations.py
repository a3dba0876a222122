"""FHIR Consent ⇄ a HIPAA authorization (45 CFR 164.508), recorded and revoked through the consent
app's services: the same validator, the same audit trail, the same send gate.

A Consent is an authorization when its policyRule is coded `hipaa-auth` or `hipaa-research`
(http://terminology.hl7.org/CodeSystem/consentpolicycodes, "45 CFR Section 164.508 Uses and
disclosures for which an authorization is required"). Where R4 has an element for a core element of
the signed form, it is used; the required statements R4 has no element for travel in one extension:

| 164.508 | Consent |
|---|---|
| (c)(1)(i) the information | provision.code[].text |
| (c)(1)(ii) who may disclose | provision.actor, role v3-ParticipationType CST (custodian) |
| (c)(1)(iii) who may receive | provision.actor, role v3-ParticipationType IRCP or PRCP (recipient) |
| (c)(1)(iv) purpose | provision.purpose v3-ActReason HMARKT / HRESCH (the kind) + extension `purpose` |
| (c)(1)(v) expiration | provision.period.end (the last day), or extension `expiry-event` |
| (c)(1)(vi) signature, date | performer[0].display (RelatedPerson: a personal representative), dateTime |
| (c)(2) statements | extension `revocation-rights`, `conditioning-statement`, `redisclosure-statement` |
| the signed form | sourceAttachment (title; data + contentType: the scan, stored encrypted) |
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.consent import Consent

from consent import authorization_records as records
from consent import authorization_rules as rules
from consent.authorizations import REVOCATION_RECEIVED
from consent.models import Authorization, AuthorizationKind, FormSource, Source
from healthmail.errors import ApplicationError

from .patients import REDACTED

POLICY_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentpolicycodes"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
LOINC = "http://loinc.org"
# LOINC 64292-6 "Release of information consent": what an authorization to use or disclose PHI is.
CATEGORY = {"system": LOINC, "code": "64292-6", "display": "Release of information consent"}
EXTENSION = "https://healthmail.example/fhir/StructureDefinition/hipaa-authorization"
POLICIES = {"hipaa-auth": "HIPAA Authorization", "hipaa-research": "HIPAA Research Authorization"}
PURPOSES = {"HMARKT": AuthorizationKind.MARKETING, "HRESCH": AuthorizationKind.RESEARCH}
KIND_PURPOSE: dict[str, str] = {str(kind): code for code, kind in PURPOSES.items()}
DISCLOSER_ROLES = ("CST",)
RECIPIENT_ROLES = ("IRCP", "PRCP")
# Where the signed form lives when the Consent does not say: an EHR posting it holds the form.
DEFAULT_FORM_SOURCE = FormSource.EHR
_EVIDENCE_SOURCE: dict[str, str] = {
    FormSource.PAPER: Source.PAPER,
    FormSource.ELECTRONIC: Source.API,
    FormSource.EHR: Source.API,
}

_STATEMENTS = ("purpose", "revocation-rights", "conditioning-statement", "redisclosure-statement")
_ELEMENT = f"Consent.extension('{EXTENSION}')"
# A validator defect → the Consent element it is about (an OperationOutcome issue's expression).
DEFECT_ELEMENTS = {
    "missing_phi_description": "Consent.provision.code",
    "missing_disclosers": "Consent.provision.actor",
    "missing_recipients": "Consent.provision.actor",
    "missing_purpose": f"{_ELEMENT}.extension('purpose')",
    "purpose_at_request_not_individual": f"{_ELEMENT}.extension('purpose')",
    "missing_expiration": "Consent.provision.period.end",
    "expiration_none_not_research": f"{_ELEMENT}.extension('expiration')",
    "expiration_contradictory": f"{_ELEMENT}.extension('expiration')",
    "expiration_before_signature": "Consent.provision.period.end",
    "missing_signature": "Consent.performer",
    "missing_signature_date": "Consent.dateTime",
    "signature_date_in_future": "Consent.dateTime",
    "missing_representative_authority": f"{_ELEMENT}.extension('representative-authority')",
    "missing_revocation_statement": f"{_ELEMENT}.extension('revocation-rights')",
    "missing_conditioning_statement": f"{_ELEMENT}.extension('conditioning-statement')",
    "missing_redisclosure_statement": f"{_ELEMENT}.extension('redisclosure-statement')",
    "not_plain_language": _ELEMENT,
    "missing_remuneration_statement": f"{_ELEMENT}.extension('remuneration-statement')",
    "expired": "Consent.provision.period.end",
    "compound_authorization": f"{_ELEMENT}.extension('combined-with')",
    "conditioning_prohibited": f"{_ELEMENT}.extension('conditioned-on')",
}


class AuthorizationConsentInvalid(ApplicationError):
    status_code = 422
    title = "Consent not accepted"


def _refuse(message: str, code: str, element: str) -> AuthorizationConsentInvalid:
    return AuthorizationConsentInvalid(message, code=code, extra={"errors": {element: [message]}})


def defects_refused(error: records.AuthorizationDefective) -> AuthorizationConsentInvalid:
    """The service's refusal, each defect an issue naming its code, paragraph and Consent element."""
    errors: dict[str, list[str]] = {}
    for found in error.defects:
        element = DEFECT_ELEMENTS.get(found.code, "Consent")
        errors.setdefault(element, []).append(f"{found.code}: {found.message} ({found.paragraph})")
    return AuthorizationConsentInvalid(error.message, code=error.code, extra={"errors": errors})


def is_authorization(consent: Consent) -> bool:
    codings = consent.policyRule.coding or [] if consent.policyRule is not None else []
    return any(c.system == POLICY_SYSTEM and c.code in POLICIES for c in codings)


@dataclass(frozen=True)
class AuthorizationInput:
    """Everything authorization_record needs, read from a Consent."""

    contact_id: str
    kind: str
    title: str
    elements: dict[str, Any]
    signature: records.Signature
    circumstances: records.Circumstances
    evidence_source: str
    attachment: records.Attachment | None
    submission_key: str


def _extensions(consent: Consent) -> dict[str, list[Any]]:
    """The sub-extensions of our extension by name: their values (value[x], whichever type)."""
    found: dict[str, list[Any]] = {}
    for outer in consent.extension or []:
        if outer.url != EXTENSION:
            continue
        for inner in outer.extension or []:
            value = next(
                (getattr(inner, name) for name in ("valueString", "valueCode", "valueBoolean", "valueDate")
                 if getattr(inner, name, None) is not None),
                None,
            )  # fmt: skip
            if value is not None and inner.url:
                found.setdefault(inner.url, []).append(value)
    return found


def _text(values: dict[str, list[Any]], name: str) -> str:
    return "\n".join(str(v).strip() for v in values.get(name, []) if str(v).strip())


def _codes(values: dict[str, list[Any]], name: str, allowed: tuple[str, ...]) -> frozenset[str]:
    given = frozenset(str(v) for v in values.get(name, []))
    unknown = sorted(given - set(allowed))
    if unknown:
        raise _refuse(
            f"{name} is one of {', '.join(allowed)}; not {', '.join(unknown)}.",
            f"{name.replace('-', '_')}_invalid",
            f"{_ELEMENT}.extension('{name}')",
        )
    return given


def _one_code(values: dict[str, list[Any]], name: str, allowed: tuple[str, ...], default: str) -> str:
    given = _codes(values, name, allowed)
    if len(given) > 1:
        raise _refuse(
            f"Give one {name}.", f"{name.replace('-', '_')}_invalid", f"{_ELEMENT}.extension('{name}')"
        )
    return next(iter(given), default)


def _actors(consent: Consent, roles: tuple[str, ...]) -> str:
    provision = consent.provision
    named = []
    for actor in (provision.actor or []) if provision is not None else []:
        codes = {c.code for c in actor.role.coding or [] if c.system == PARTICIPATION}
        if codes & set(roles):
            name = actor.reference.display or actor.reference.reference or ""
            if name.strip():
                named.append(name.strip())
    return "; ".join(named)


def _kind(consent: Consent) -> str:
    provision = consent.provision
    codes = {
        PURPOSES[c.code]
        for c in (provision.purpose or [] if provision is not None else [])
        if c.system == ACT_REASON and c.code in PURPOSES
    }
    rule = consent.policyRule
    policies = {c.code for c in (rule.coding or [] if rule is not None else []) if c.system == POLICY_SYSTEM}
    if len(codes) != 1:
        raise _refuse(
            f"Give provision.purpose {ACT_REASON}|HMARKT (marketing) or |HRESCH (research).",
            "purpose_of_use_required",
            "Consent.provision.purpose",
        )
    [kind] = codes
    if "hipaa-research" in policies and kind != AuthorizationKind.RESEARCH:
        raise _refuse(
            "A hipaa-research policyRule goes with the research purpose (HRESCH).",
            "purpose_of_use_inconsistent",
            "Consent.provision.purpose",
        )
    return kind


def _signed_on(consent: Consent) -> datetime.date | None:
    """The date written next to the signature (a dateTime's own date, as written)."""
    value = consent.dateTime
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    return None  # a year or year-month is not a date: (c)(1)(vi) wants the signature dated


def _signature(consent: Consent, values: dict[str, list[Any]]) -> records.Signature:
    performer = consent.performer[0] if consent.performer else None
    name = (performer.display or "") if performer is not None else ""
    reference = (performer.reference or "") if performer is not None else ""
    by_representative = performer is not None and (
        performer.type == "RelatedPerson" or reference.startswith("RelatedPerson/")
    )
    return records.Signature(
        signer_name=name.strip()[:200],
        signed_on=_signed_on(consent),
        by_representative=by_representative,
        representative_authority=_text(values, "representative-authority"),
    )


def _expiration(consent: Consent, values: dict[str, list[Any]]) -> tuple[datetime.date | None, str, str]:
    """(last day, end event, the expiration as the form words it, if given)."""
    period = consent.provision.period if consent.provision is not None else None
    end = period.end if period is not None else None
    if end is not None and not isinstance(end, datetime.date):
        raise _refuse(
            "Give provision.period.end as a full date.", "period_end_invalid", "Consent.provision.period.end"
        )
    expires_on = end.date() if isinstance(end, datetime.datetime) else end
    event = _text(values, "expiry-event")[:300]
    # Without the words, the recording service writes them from the date or event.
    return expires_on, event, _text(values, "expiration")


def _attachment(consent: Consent) -> tuple[str, records.Attachment | None]:
    source = consent.sourceAttachment
    if source is None:
        return "", None
    title = (source.title or "").strip()[:200]
    if source.data is None:
        return title, None  # a reference to where the form lives (url): nothing of it is kept here
    if isinstance(source.data, bytes):
        content = source.data  # the model has decoded the base64Binary already
    else:
        try:
            content = base64.b64decode(str(source.data), validate=True)
        except (binascii.Error, ValueError):
            raise _refuse(
                "sourceAttachment.data is not base64.", "attachment_invalid", "Consent.sourceAttachment"
            ) from None
    return title, records.Attachment(content=content, content_type=source.contentType or "")


def _submission_key(consent: Consent) -> str:
    """The Consent's business identifier as the idempotency key (hashed: it may name a person)."""
    identifiers = [i for i in consent.identifier or [] if i.value]
    if not identifiers:
        return ""
    first = identifiers[0]
    digest = hashlib.sha256(f"{first.system or ''}|{first.value}".encode()).hexdigest()
    return f"fhir:{digest[:48]}"


def authorization_input(consent: Consent, *, new_key: str) -> AuthorizationInput:
    """What a Consent says about the signed form, or AuthorizationConsentInvalid saying what it cannot
    be read as. Missing core elements are not refused here: the consent app's validator names them."""
    if consent.status != "active":
        raise _refuse(
            "Record a signed authorization as an active Consent.", "status_not_active", "Consent.status"
        )
    if consent.provision is None or consent.provision.type != "permit":
        raise _refuse(
            "An authorization permits (provision.type permit); without one nothing is allowed.",
            "provision_required",
            "Consent.provision.type",
        )
    reference = consent.patient.reference if consent.patient is not None else None
    kind_, _, contact_id = (reference or "").partition("/")
    if kind_ != "Patient" or not contact_id:
        raise _refuse(
            "Name the patient: patient.reference Patient/<id>.", "patient_required", "Consent.patient"
        )
    values = _extensions(consent)
    expires_on, event, expiration_words = _expiration(consent, values)
    title, attachment = _attachment(consent)
    form_source = _one_code(values, "form-source", tuple(FormSource.values), DEFAULT_FORM_SOURCE)
    elements = {
        "phi_description": "\n".join(
            c.text.strip() for c in consent.provision.code or [] if c.text and c.text.strip()
        ),
        "disclosers": _actors(consent, DISCLOSER_ROLES),
        "recipients": _actors(consent, RECIPIENT_ROLES),
        "purpose": _text(values, "purpose"),
        "expiration": expiration_words,
        "revocation_rights": _text(values, "revocation-rights"),
        "conditioning_statement": _text(values, "conditioning-statement"),
        "redisclosure_statement": _text(values, "redisclosure-statement"),
        "remuneration_involved": any(v is True for v in values.get("remuneration-involved", [])),
        "remuneration_statement": _text(values, "remuneration-statement"),
    }
    return AuthorizationInput(
        contact_id=contact_id,
        kind=_kind(consent),
        title=title or "Authorization recorded from an EHR (FHIR Consent)",
        elements=elements,
        signature=_signature(consent, values),
        circumstances=records.Circumstances(
            initiated_by=_one_code(
                values, "initiated-by", rules.Initiator.ALL, rules.Initiator.COVERED_ENTITY
            ),
            combined_with=_codes(values, "combined-with", rules.Combined.ALL),
            conditioned_on=_codes(values, "conditioned-on", rules.CONDITIONABLE),
            form_source=form_source,
            expires_on=expires_on,
            expiry_event=event,
        ),
        evidence_source=_EVIDENCE_SOURCE[form_source],
        attachment=attachment,
        submission_key=_submission_key(consent) or f"fhir:{new_key}",
    )


@dataclass(frozen=True)
class Revocation:
    received_on: datetime.date | None
    received_via: str


def revocation_input(consent: Consent) -> Revocation:
    """The day the written revocation was received (default today) and how, from an update."""
    values = _extensions(consent)
    days = [v for v in values.get("revoked-on", []) if isinstance(v, datetime.date)]
    via = _one_code(values, "revocation-received-via", REVOCATION_RECEIVED, "")
    return Revocation(received_on=days[0] if days else None, received_via=via)


# --- read ---------------------------------------------------------------------------------------------

PHI_FIELDS = [
    "signed_on",
    "expires_on",
    "expiry_event",
    "revoked_at",
    "signer_name",
    "representative_authority",
]
MASKED_FIELDS = ["kind", "status"]


def _sub(name: str, kind: str, value: Any) -> dict[str, Any]:
    return {"url": name, f"value{kind}": value}


def _actor(role: str, display: str) -> dict[str, Any]:
    return {"role": {"coding": [{"system": PARTICIPATION, "code": role}]}, "reference": {"display": display}}


def authorization_resource(
    *, authorization: Authorization, defects: list[rules.Defect], masked: bool, tenant_zone: Any
) -> dict[str, Any]:
    """A stored authorization as a Consent. Active while the validator finds no defect today;
    `defect` extensions say why not. Masked: no dates, no signer, no end event (REDACTED)."""
    text = authorization.text
    policy = "hipaa-research" if authorization.kind == AuthorizationKind.RESEARCH else "hipaa-auth"
    extension: list[dict[str, Any]] = [
        _sub(name, "String", getattr(text, name.replace("-", "_")))
        for name in _STATEMENTS
        if getattr(text, name.replace("-", "_"))
    ]
    extension.append(_sub("expiration", "String", text.expiration))
    if text.remuneration_involved:
        extension.append(_sub("remuneration-involved", "Boolean", True))
    if text.remuneration_statement:
        extension.append(_sub("remuneration-statement", "String", text.remuneration_statement))
    extension += [
        _sub("kind", "Code", authorization.kind),  # marketing, research or media (testimonials)
        _sub("initiated-by", "Code", authorization.initiated_by),
        _sub("form-source", "Code", authorization.form_source),
        *[_sub("combined-with", "Code", code) for code in authorization.combined_with],
        *[_sub("conditioned-on", "Code", code) for code in authorization.conditioned_on],
        *[_sub("defect", "Code", found.code) for found in defects],
    ]
    provision: dict[str, Any] = {
        "type": "permit",
        "actor": [
            *([_actor("CST", text.disclosers)] if text.disclosers else []),
            *([_actor("IRCP", text.recipients)] if text.recipients else []),
        ],
        "purpose": [{"system": ACT_REASON, "code": KIND_PURPOSE.get(authorization.kind, "HMARKT")}],
        "code": [{"text": text.phi_description}],
    }
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": str(authorization.pk),
        "status": "active"
        if authorization.status == Authorization.Status.VALID and not defects
        else "inactive",
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [{"coding": [CATEGORY]}],
        "patient": {"reference": f"Patient/{authorization.contact_id}"},
        "policyRule": {"coding": [{"system": POLICY_SYSTEM, "code": policy, "display": POLICIES[policy]}]},
        "sourceAttachment": {"title": text.title},
        "provision": provision,
    }
    if masked:
        resource["meta"] = {"security": [REDACTED]}
    else:
        resource["dateTime"] = authorization.signed_on.isoformat()
        performer: dict[str, Any] = {"display": authorization.signer_name or ""}
        if authorization.by_representative:
            performer["type"] = "RelatedPerson"
            if authorization.representative_authority:
                extension.append(
                    _sub("representative-authority", "String", authorization.representative_authority)
                )
        else:
            performer["reference"] = f"Patient/{authorization.contact_id}"
        resource["performer"] = [performer]
        period: dict[str, str] = {"start": authorization.effective_from.isoformat()}
        if authorization.expires_on is not None:
            period["end"] = authorization.expires_on.isoformat()
        provision["period"] = period
        if authorization.expiry_event:
            extension.append(_sub("expiry-event", "String", authorization.expiry_event))
        if authorization.revoked_at is not None:
            revoked_on = authorization.revoked_at.astimezone(tenant_zone).date()
            extension.append(_sub("revoked-on", "Date", revoked_on.isoformat()))
            if authorization.revocation_received:
                extension.append(_sub("revocation-received-via", "Code", authorization.revocation_received))
    resource["extension"] = [{"url": EXTENSION, "extension": extension}]
    return resource
